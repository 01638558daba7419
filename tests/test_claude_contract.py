"""The Claude client against the real API's contract, through the real `anthropic` SDK and the fake server's real
shapes.

Each test drives one case of issue 20 through the package: batches that survive lost replies and restarts without
double billing, batch results read by type, replies judged by stop reason, one retry layer, frames within the image
limits, resumable and costed recaptions, caching minimums and one default model.
"""
import os, sys, json, asyncio, inspect, logging, subprocess
from pathlib import Path

import numpy as np
import pytest
import anthropic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rcc_rank.core.basics import read_jsonl, append_jsonl
from rcc_rank.data.chains import read_chains
from rcc_rank.testing.fake_claude import FakeClaude, request_text
from rcc_rank.data.mutators import rule_types
from rcc_rank.data.backends import ClaudeMutator
from rcc_rank.data.claude_models import DEFAULT_MODEL, deprecated_models
from rcc_rank.testing.responders import rule_responder
from rcc_rank.data.builder import abuild_chains, failures, RunStopped, POLICY_REFUSALS
from rcc_rank.data.run_files import side_paths
from rcc_rank.data.batches import abuild_chains_batched, BatchLedger, BatchError, split_batches
from rcc_rank.recipes.generate import arecaption_file, arecaption_file_batched

FAKE_KEY = 'sk-ant-FAKEKEY-contract-0000'
CAP = ('A man in a red jacket walks across a small park holding a blue ball. A brown dog runs next to a wooden bench '
       'while three birds fly above. Then the camera pans left as the light turns golden.')
ITEMS = [{'id': f'clip-{i}', 'caption': CAP.replace('three', ['two', 'four', 'five', 'six'][i])} for i in range(4)]

def mutator(srv, model='claude-fake', **kw):
    return ClaudeMutator(
        model=model,
        client=srv.async_client(max_retries=kw.pop('max_retries', 2)),
        types=rule_types(),
        tagger='keywords',
        **kw,
    )

def batched(srv, out, items=ITEMS, **kw):
    m = kw.pop('m', None) or mutator(srv)
    return asyncio.run(abuild_chains_batched(items, m, 3, 0, out, poll_interval=0, progress=False, **kw))

def server_ids(srv): return {b['id'] for b in srv.batches.values()}

# ------------------------------------------------------------------------------------------- batches

def test_lost_create_reply_adopts_the_batch_instead_of_billing_twice(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder()) as srv:
        srv.inject('lost_reply', on='batches')              # the batch is made, its reply never arrives
        s = batched(srv, out)
        led = BatchLedger(side_paths(out)['batches'])
        assert server_ids(srv) == led.ids                   # every batch the server made is recorded, none twice
        subs = [r for r in led.state if r['event'] == 'submitted']
        assert subs[0]['adopted'] and len(subs) == s['batches']
    assert s['finished'] == len(ITEMS)

def test_restart_between_intent_and_submission_adopts(tmp_path):
    "A run that died after `create` but before recording it: the rerun rebuilds the same round and adopts the batch"
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder(), batch_polls=0) as srv:
        batched(srv, out)
        led = BatchLedger(side_paths(out)['batches'])
        first = [r for r in led.state if r['event'] == 'submitted'][0]
        # the state the dead run left: the intent is on disk, the submission and everything after it are not
        keep = [r for r in led.state if r['event'] == 'intent' and r['round'] == 0]
        p = side_paths(out)['batches']
        p.unlink()
        append_jsonl(p, keep)
        for f in (out, side_paths(out)['progress'], side_paths(out)['failures']): f.unlink(missing_ok=True)
        n_before = len(srv.batches)
        s2 = batched(srv, out)
        led2 = BatchLedger(p)
        sub0 = [r for r in led2.state if r['event'] == 'submitted'][0]
        assert sub0['batch_id'] == first['batch_id'] and sub0['adopted']
        assert len(srv.batches) - n_before == s2['batches'] - 1      # round 0 was not paid again
    assert s2['finished'] == len(ITEMS)

def test_batch_results_by_type(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder()) as srv:
        srv.inject('invalid')
        srv.inject('expired')
        srv.inject('errored')
        srv.inject('max_tokens')
        s = batched(srv, out)
        budgets = sorted({r['params']['max_tokens'] for b in srv.batches.values() for r in b['_requests']})
        by_id = {}
        for b in srv.batches.values():
            for r in b['_requests']: by_id.setdefault(r['custom_id'].rsplit('-r', 1)[0], []).append(r['custom_id'])
    f = failures(out)
    kinds = {x['kind']: x for x in f}
    assert {'rejected', 'expired', 'api', 'truncated'} <= set(kinds)
    assert budgets == [2048, 8192]                           # the cut-off step went again with the larger budget
    rej = kinds['rejected']
    assert (
        'invalid_request_error' in rej['reason'] and 'fake invalid request' in rej['reason']
    )  # the API's message kept
    step_key = next(k for k in by_id if k.startswith(rej['id'][:24]) and k.endswith(f"s{rej['step']}"))
    assert len(by_id[step_key]) == 1                         # a permanent error is never resubmitted
    assert s['rejected'] == 1 and s['unfinished'] == 1 and s['finished'] == len(ITEMS) - 1
    assert rej['id'] not in {c.id for c in read_chains(out)}

def test_cancelled_batch_stops_and_says_so(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder(), batch_polls=10_000) as srv:
        s1 = batched(srv, out, max_wait=0)
        srv.cancel(s1['open_batch'])                          # someone cancels it in the Console
        n = len(srv.batches)
        with pytest.raises(BatchError, match=f"batch {s1['open_batch']} was cancelled"): batched(srv, out)
        assert len(srv.batches) == n                          # nothing resubmitted at once
    assert {f['kind'] for f in failures(out)} == {'canceled'}

def test_vanished_batch_names_the_way_on(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder(), batch_polls=10_000) as srv:
        s1 = batched(srv, out, max_wait=0)
        srv.vanish(s1['open_batch'])                          # past the 29-day retention
        with pytest.raises(BatchError, match=f"--forget_batch {s1['open_batch']}"): batched(srv, out)
        srv.batch_polls = 0
        s = batched(srv, out, forget=[s1['open_batch']])
    assert s['finished'] == len(ITEMS)
    from rcc_rank.recipes.generate import generate_command
    append_jsonl(tmp_path/'in.jsonl', ITEMS)
    with pytest.raises(SystemExit, match='no batch msgbatch_nope is recorded'):  # a typo is named, not silently ignored
        generate_command(str(tmp_path/'in.jsonl'), str(out), forget_batch='msgbatch_nope', quiet=True)

def test_rounds_split_at_the_size_limits(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder()) as srv:
        s = batched(srv, out, max_requests=3)
        sizes = sorted(len(b['_requests']) for b in srv.batches.values())
    subs = [r for r in read_jsonl(side_paths(out)['batches']) if r['event'] == 'submitted']
    assert [r['part'] for r in subs if r['round'] == 0] == [0, 1] and max(sizes) <= 3
    assert s['finished'] == len(ITEMS)
    reqs = [{'custom_id': str(i), 'params': {'x': 'y' * 100}} for i in range(10)]
    parts = split_batches(reqs, max_bytes=400)
    assert sum(map(len, parts)) == 10 and all(len(json.dumps(p)) <= 400 for p in parts)

# ------------------------------------------------------------------------------------- stop reasons

def test_cut_off_tool_call_is_retried_once_with_a_larger_budget(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder()) as srv:
        srv.inject('max_tokens')
        s = asyncio.run(abuild_chains(ITEMS[:1], mutator(srv), 3, 0, out, progress=False))
        budgets = [r['max_tokens'] for r in srv.requests]
    assert budgets[:2] == [2048, 8192] and s['finished'] == 1 and s['invalid'] == 0
    with FakeClaude(responder=rule_responder()) as srv:  # a budget too small for any reply: never saved as data
        s = asyncio.run(
            abuild_chains(
                ITEMS[:1],
                mutator(srv, max_tokens=20, retry_max_tokens=40),
                3,
                0,
                tmp_path / 'small.jsonl',
                max_attempts=1,
                progress=False,
            )
        )
    kinds = [f['kind'] for f in failures(tmp_path/'small.jsonl')]
    assert (
        s['steps'] == 0 and 'truncated' in kinds and set(kinds) <= {'truncated', 'refused'}
    )  # refused: the type did not apply
    assert all(len(c.captions) == 1 for c in read_chains(tmp_path/'small.jsonl'))

def test_tool_call_missing_required_fields_is_not_a_step(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=rule_responder()) as srv:
        srv.inject('missing_field', times=2)
        s = asyncio.run(abuild_chains(ITEMS[:2], mutator(srv), 3, 0, out, concurrency=1, progress=False))
    f = [x for x in failures(out) if x['kind'] == 'malformed']
    assert len(f) == 2 and all("lacks required field(s) ['before', 'after']" in x['reason'] for x in f)
    assert all(m.after for c in read_chains(out) for m in c.mutations)
    assert s['input_tokens'] > sum(
        r['usage']['input_tokens'] for r in read_jsonl(side_paths(out)['progress']) if 'usage' in r
    )  # malformed replies' usage counted


def test_policy_refusal_recorded_with_category_and_not_paid_again(tmp_path):
    out = tmp_path/'c.jsonl'
    with FakeClaude(responder=lambda b: {'refusal': 'no', 'category': 'bio', 'explanation': 'fake policy'}) as srv:
        s = asyncio.run(abuild_chains(ITEMS[:1], mutator(srv), 3, 0, out, progress=False))
        n = len(srv.requests)
        s2 = asyncio.run(abuild_chains(ITEMS[:1], mutator(srv), 3, 0, out, progress=False))
        assert len(srv.requests) == n                          # a rerun does not pay for the same refusals again
    assert n == POLICY_REFUSALS < len(rule_types())
    f = failures(out)
    assert all(x['category'] == 'bio' and x['policy'] for x in f) and 'fake policy' in f[0]['reason']
    assert s['unfinished'] == 1 and s2['unfinished'] == 1 and not out.exists() or read_chains(out) == []

# ------------------------------------------------------------------------------------------ retries

def test_one_retry_layer(tmp_path):
    with FakeClaude(responder=rule_responder(), retry_after=0.01) as srv:
        srv.inject('500', times=100)
        s = asyncio.run(
            abuild_chains(
                ITEMS[:1], mutator(srv, max_retries=2), 3, 0, tmp_path / 'c.jsonl', backoff=0.01, progress=False
            )
        )
        assert srv.served_faults.count('500') == 3             # the SDK's 1 + 2 retries, nothing layered on top
    assert s['unfinished'] == 1 and s['api_errors'] == 1

@pytest.mark.parametrize('fault', ['spend_limit', 'credit'])
def test_spend_limit_stops_the_run(fault, tmp_path):
    with FakeClaude(responder=rule_responder(), retry_after=0.01) as srv:
        srv.inject(fault, times=1000)
        with pytest.raises(RunStopped, match='spend limit or credit'):
            asyncio.run(
                abuild_chains(
                    ITEMS,
                    mutator(srv, max_retries=1),
                    3,
                    0,
                    tmp_path / 'c.jsonl',
                    concurrency=2,
                    backoff=0.01,
                    progress=False,
                )
            )
        assert (
            len(srv.served_faults) <= 2 * 2 + 2
        )  # concurrency x (1 + retries), and those already in flight; then the run stops


# ------------------------------------------------------------------------------------------ recaption

def describe(body):
    n = sum(
        b.get('type') == 'image'
        for m in body['messages']
        for b in (m['content'] if isinstance(m['content'], list) else [])
    )
    if n == 0: return rule_responder()(body)
    return f'{n} frames. ' + CAP

def test_frames_resized_to_the_image_limits_and_bad_rows_recorded(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{'id': 'tall', 'caption': 'a man', 'frames': rng.integers(0, 255, (2, 9000, 16, 3), dtype=np.uint8)},
            {'id': 'many', 'caption': 'a dog', 'frames': rng.integers(0, 255, (25, 16, 2500, 3), dtype=np.uint8)},
            {'id': 'toomany', 'caption': 'a cat', 'frames': np.zeros((101, 8, 8, 3), np.uint8)},
            {'id': 'novideo', 'caption': 'a car'}]
    out = tmp_path/'r.jsonl'
    with FakeClaude(responder=describe) as srv:
        s = asyncio.run(arecaption_file(rows, ClaudeMutator(client=srv.async_client()), out))
        assert len(srv.requests) == 2
    got = {r['id']: r for r in read_jsonl(out)}
    assert set(got) == {'tall', 'many'} and got['many']['caption'].startswith('25 frames')
    f = {x['id']: x for x in failures(out)}
    assert f['toomany']['kind'] == 'unsendable' and 'at most 100 images' in f['toomany']['reason']
    assert f['novideo']['kind'] == 'unsendable'
    assert got['tall']['meta']['recaption_usage']['image_tokens'] == 2 * -(-3 * 1568 // 750)
    assert got['many']['meta']['recaption_usage']['input_tokens'] >= 25 * -(
        -1568 * 10 // 750
    )  # the images are billed as tokens
    assert s['recaptioned'] == 2 and s['failed'] == 2 and s['usd_estimate'] > 0

def test_recaption_resumes_per_row(tmp_path):
    rows = [{'id': f'v{i}', 'caption': f'clip {i}', 'frames': np.zeros((2, 8, 8, 3), np.uint8)} for i in range(6)]
    def flaky(body):
        if 'clip 3' in request_text(body): raise RuntimeError('boom')   # the fake answers 500 for this row
        return describe(body)
    out = tmp_path/'r.jsonl'
    with FakeClaude(responder=flaky) as srv:
        s = asyncio.run(arecaption_file(rows, ClaudeMutator(client=srv.async_client(max_retries=0)), out))
        assert len(srv.requests) == 6
        srv.responder = describe
        s2 = asyncio.run(arecaption_file(rows, ClaudeMutator(client=srv.async_client(max_retries=0)), out))
        assert len(srv.requests) == 7                          # only the failed row is paid again
    assert (s['recaptioned'], s['failed'], s2['recaptioned'], s2['skipped']) == (5, 1, 1, 5)
    assert sorted(r['id'] for r in read_jsonl(out)) == [f'v{i}' for i in range(6)]

def test_recaption_through_batches(tmp_path):
    rows = [{'id': f'v{i}', 'caption': f'clip {i}', 'frames': np.zeros((2, 8, 8, 3), np.uint8)} for i in range(5)]
    out = tmp_path/'r.jsonl'
    with FakeClaude(responder=describe) as srv:
        srv.inject('expired')
        srv.inject('invalid')
        s = asyncio.run(
            arecaption_file_batched(
                rows, ClaudeMutator(client=srv.async_client()), out, poll_interval=0, max_requests=2
            )
        )
        assert server_ids(srv) == BatchLedger(side_paths(out)['batches']).ids
    assert s['recaptioned'] == 4 and {f['kind'] for f in failures(out)} == {'expired', 'rejected'}
    assert s['usd_estimate'] == pytest.approx(s['usd_estimate'])  and s['usd_estimate'] > 0

def test_cli_recaption_batch_first_run_records_every_batch(tmp_path):
    from rcc_rank.testing.fixtures import write_test_video

    rows = [
        {
            'id': f'v{i}',
            'caption': f'a short caption {i}',
            'video': str(write_test_video(tmp_path / f'v{i}.mp4', n=6, size=(32, 32))),
        }
        for i in range(5)
    ]
    rows.append({'id': 'gone', 'caption': 'a missing video', 'video': str(tmp_path/'gone.mp4')})
    append_jsonl(tmp_path/'in.jsonl', rows)
    out = tmp_path/'chains.jsonl'
    with FakeClaude(responder=describe, batch_polls=1) as srv:
        srv.inject('lost_reply', on='batches')
        env = {
            **os.environ,
            'PYTHONPATH': str(ROOT),
            'ANTHROPIC_API_KEY': FAKE_KEY,
            'ANTHROPIC_BASE_URL': srv.base_url,
            'HF_HUB_OFFLINE': '1',
        }
        p = subprocess.run(
            [
                sys.executable,
                '-m',
                'rcc_rank.recipes.generate',
                tmp_path / 'in.jsonl',
                out,
                '--mutator',
                'claude',
                '--model',
                DEFAULT_MODEL,
                '--tagger',
                'keywords',
                '--types',
                ','.join(rule_types()),
                '--length',
                '3',
                '--recaption',
                '--batch',
                '--poll_interval',
                '0.01',
                '--num_frames',
                '4',
                '--quiet',
                '--json',
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        recorded = (
            BatchLedger(side_paths(out)['batches']).ids
            | BatchLedger(side_paths(out.with_name('chains.recaptioned.jsonl'))['batches']).ids
        )
        assert server_ids(srv) == recorded                     # every batch created on the server is recorded
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s['finished'] == 5 and s['recaption']['recaptioned'] == 5 and s['recaption']['failed'] == 1
    assert s['usd_estimate'] > s['recaption']['usd_estimate'] > 0  # the recaption is in the run's cost
    assert FAKE_KEY not in p.stdout + p.stderr

# ------------------------------------------------------------------------------------ caching, models

def test_cache_marks_only_above_the_model_minimum(tmp_path):
    with FakeClaude(responder=rule_responder()) as srv:
        s_new = asyncio.run(
            abuild_chains(
                ITEMS[:2], mutator(srv, model='claude-sonnet-5-5'), 3, 0, tmp_path / 'a.jsonl', progress=False
            )
        )
        s_old = asyncio.run(
            abuild_chains(
                ITEMS[:2], mutator(srv, model='claude-sonnet-4-6'), 3, 0, tmp_path / 'b.jsonl', progress=False
            )
        )
        forced = [r for r in srv.requests if r['model'] == 'claude-sonnet-5-5' and r['tool_choice']['type'] != 'auto']
        c = srv.client(max_retries=0)
        mark = {'type': 'text', 'text': 'x', 'cache_control': {'type': 'ephemeral'}}
        with pytest.raises(anthropic.BadRequestError, match='maximum of 4 blocks'):
            c.messages.create(
                model=DEFAULT_MODEL, max_tokens=10, system=[mark] * 5, messages=[{'role': 'user', 'content': 'hi'}]
            )
        with pytest.raises(anthropic.BadRequestError, match="use 'auto'"):
            c.messages.create(model='claude-sonnet-5-5', max_tokens=10,
                              tools=[{'name': 't', 'input_schema': {'type': 'object'}}],
                              tool_choice={'type': 'tool', 'name': 't'}, messages=[{'role': 'user', 'content': 'hi'}])
    assert forced == []
    assert s_new['cache_read_input_tokens'] > 0                # 5.5: 512-token minimum, this prefix caches
    assert s_old['cache_read_input_tokens'] == s_old['cache_creation_input_tokens'] == 0   # 4.6: 2048, no mark sent

def test_one_default_model_current_and_deprecated_warned(caplog):
    import typing, rcc_rank.data.claude_questions as q, rcc_rank.evaluation.judges as j
    import rcc_rank.recipes.baselines as b, rcc_rank.evaluation.evaluate as e
    from anthropic.types import ModelParam
    assert DEFAULT_MODEL in typing.get_args(typing.get_args(ModelParam)[0]) and DEFAULT_MODEL not in deprecated_models()
    defaults = [
        inspect.signature(f).parameters['model'].default
        for f in (
            q.question_request,
            q.allm_question_chain,
            q.allm_question_chains,
            j.ClaudeJudge,
            b.Teacher,
            b.FreeMutator,
            ClaudeMutator,
        )
    ]
    assert set(defaults) == {DEFAULT_MODEL}
    assert e.make_judge('claude', max_retries=0).model == DEFAULT_MODEL
    for path in (
        'rcc_rank/data/claude_questions.py',
        'rcc_rank/evaluation/judges.py',
        'rcc_rank/evaluation/evaluate.py',
        'rcc_rank/recipes/baselines.py',
    ):
        assert 'claude-sonnet-4' not in (ROOT/path).read_text(), path
    with caplog.at_level(logging.WARNING, logger='rcc_rank'):
        ClaudeMutator(model='claude-sonnet-4-5', client=object())
    assert 'deprecated' in caplog.text and 'November 30th, 2026' in caplog.text
