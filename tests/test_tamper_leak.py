"""System tests: nothing tampered is served, nothing secret leaks, a failed item does not crash a command.

The commands run in subprocesses (`python -m rcc_rank.evaluation.evaluate_cli|generate`) and talk through the real
`anthropic` SDK to the local fake Claude server (`rcc_rank.testing.fake_claude`), with faults injected: judge caches
edited by hand are re-asked and counted, not served; an error body echoing the request's headers (the key among them)
never reaches the terminal or a file, on the async builder, batch and judge paths; a VDC item whose judge calls fail is
named and counted, with the result written.
"""
import re, sys, json, subprocess
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ENV as _ENV
ENV = {k: v for k, v in _ENV.items() if k not in ('ANTHROPIC_API_KEY', 'ANTHROPIC_BASE_URL')}

from rcc_rank.core.basics import append_jsonl, read_jsonl
from rcc_rank.testing.fake_claude import FakeClaude, request_text
from rcc_rank.testing.fake_replies import Rejected
from rcc_rank.testing.responders import rule_responder
from rcc_rank.evaluation.benchmarks import overlap_reply
from rcc_rank.data.mutators import rule_types

KEY = 'sk-ant-FAKEKEY-tamper-leak-4242'

def run(module, args, env, timeout=180):
    return subprocess.run([sys.executable, '-m', f'rcc_rank.{module}', *map(str, args)], env={**ENV, **env},
                          capture_output=True, text=True, timeout=timeout)

def respond(body):
    ("Caption scores and VDC answers/reviews by word overlap, ARGUS lines all entailed; "
     "an item saying THE-BAD-ONE is refused (HTTP 400)")
    text = request_text(body)
    if 'THE-BAD-ONE' in text: raise Rejected(400, 'invalid_request_error', 'this item is refused')
    if 'target_caption:' in text:
        tgt = text.split('target_caption:\n"""\n')[1].split('\n"""')[0]
        lines = [s for s in re.split(r'(?<=[.!?])\s+', tgt.strip()) if s]
        return {
            'tool_use': {
                'name': 'record_lines',
                'input': {
                    'lines': [
                        dict(line=s, type='visual-description', evidence=s, reasoning='stated', verdict='entailment')
                        for s in lines
                    ]
                },
            }
        }
    return overlap_reply(text)

QA = [
    dict(question='What colour is the dog?', answer='The dog is blue.'),
    dict(question='What does the man do?', answer='The man walks.'),
]

def _edit(cache, kind, fn):
    "Rewrite every stored value of `kind` in the judge cache file with `fn` (a hand edit)"
    recs = read_jsonl(cache)
    for x in recs:
        if x.get('kind') == kind: x['value'] = fn(x['value'])
    cache.write_text(''.join(json.dumps(x) + '\n' for x in recs))

def test_tampered_vdc_and_argus_caches_are_reasked_and_a_failed_vdc_item_is_named(tmp_path):
    from rcc_rank.evaluation.judges import ClaudeJudge, JudgeCache, run_async
    from rcc_rank.evaluation.vdc import avdc_score
    from rcc_rank.evaluation.argus import argus_score
    cache = tmp_path/'cache.jsonl'
    rows = [dict(id='a', prediction='The man walks. The dog is blue.', qa=QA)]
    vdc_in = tmp_path / 'vdc.jsonl'
    append_jsonl(vdc_in, rows)
    with FakeClaude(responder=respond) as srv:
        env = dict(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url)
        judge = ClaudeJudge(
            'claude-fake', client_factory=srv.async_client
        )  # the name the command's `claude:claude-fake` judge has
        with JudgeCache(cache) as c: first = run_async(avdc_score(rows, judge, cache=c))
        assert first['vdc_score'] == 5.0 and first['n_cache_rejected'] == 0
        _edit(cache, 'vdc-review', lambda v: v.replace("'score': 5", "'score': 50"))   # 50 on the 0-5 scale
        n0 = len(srv.requests)
        vdc = lambda data, out: run(
            'evaluation.evaluate_cli',
            ['vdc', '--data', data, '--out', out, '--cache', cache, '--judge', 'claude:claude-fake', '--quiet'],
            env,
        )
        r = vdc(vdc_in, tmp_path/'v2.json')
        assert r.returncode == 0, r.stderr[-2000:]
        res = json.loads((tmp_path/'v2.json').read_text())
        assert res['vdc_score'] == 5.0 and res['n_cache_rejected'] == 2, res   # re-asked, not served as 50
        assert len(srv.requests) - n0 == 2 and 'outside the 0-5 scale' in r.stderr
        # ARGUS: a stored verdict edited to one the judge cannot give
        ag = lambda: argus_score(
            ['A man walks.'], ['A man walks. A dog runs.'], judge, cache_path=cache, progress=False
        )
        good = ag()
        _edit(cache, 'argus', lambda v: [{**v[0], 'verdict': 'bogus'}] + v[1:])
        res = ag()
        assert (
            res['n_cache_rejected'] == 2
            and res['n_failed'] == 0
            and (res['cost_h'], res['cost_o']) == (good['cost_h'], good['cost_o'])
        )
        # a VDC item whose judge calls fail: named and counted, the result written, no crash
        append_jsonl(vdc_in, [dict(id='b', prediction='THE-BAD-ONE', qa=QA)])
        r = vdc(vdc_in, tmp_path/'v3.json')
    assert r.returncode == 1 and "item(s) failed: ['b']" in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    res = json.loads((tmp_path/'v3.json').read_text())
    assert res['failed'] == ['b'] and res['n_videos'] == 1 and res['vdc_score'] == 5.0


def _no_key(tmp_path, *procs):
    ("The key is in no stream of `procs` and no file under `tmp_path`, and the redacted marker is where it would "
     "have been")
    for p in procs: assert 'FAKEKEY' not in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]
    leaked = [f for f in tmp_path.rglob('*') if f.is_file() and b'FAKEKEY' in f.read_bytes()]
    assert not leaked, leaked

def test_an_error_body_echoing_the_key_is_redacted_on_every_path(tmp_path):
    inp = tmp_path/'in.jsonl'
    append_jsonl(
        inp,
        [
            {'id': f'c{i}', 'caption': 'A man in a red jacket walks across a small park holding a blue ball.'}
            for i in range(2)
        ],
    )
    gen = lambda out, *extra: [
        '--mutator',
        'claude',
        '--model',
        'claude-fake',
        '--tagger',
        'keywords',
        '--types',
        ','.join(rule_types()),
        '--length',
        3,
        '--backoff',
        0.01,
        '--timeout',
        5,
        '--poll_interval',
        0.01,
        '--quiet',
        *extra,
    ]
    caps = tmp_path / 'caps.jsonl'
    append_jsonl(caps, [dict(id='a', prediction='A man walks.', reference='A man walks a dog.')])
    with FakeClaude(responder=rule_responder(), retry_after=0.01) as srv:
        env = dict(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url)
        srv.inject('echo_headers', times=20)
        a = run('recipes.generate', [inp, tmp_path/'async.jsonl', *gen(0)], env)            # the async builder
        srv.clear_faults().inject('echo_headers', times=20, on='batches')
        b = run('recipes.generate', [inp, tmp_path/'batch.jsonl', *gen(0, '--batch')], env)  # Message Batches
        srv.clear_faults().inject('echo_headers', times=20)
        j = run(
            'evaluation.evaluate_cli',
            [
                'judge',
                '--data',
                caps,
                '--out',
                tmp_path / 'judge.json',
                '--cache',
                tmp_path / 'jc.jsonl',
                '--judge',
                'claude:claude-fake',
                '--quiet',
            ],
            env,
        )   # the judge
        assert srv.served_faults.count('echo_headers') >= 3
    assert a.returncode != 0 and b.returncode != 0 and j.returncode != 0
    where = {'async': (tmp_path/'async.failures.jsonl').read_text(), 'batch': b.stderr, 'judge': j.stderr}
    for k, text in where.items(): assert 'Bearer [REDACTED]' in text, (k, text[-2000:])   # the echo arrived, redacted
    _no_key(tmp_path, a, b, j)


def test_bad_inputs_are_named_and_unknown_batch_results_counted(tmp_path):
    ("Invalid UTF-8, a list where a row belongs and an empty file name the input; a batch result under an unknown "
     "custom_id is logged and counted")
    cases = {'latin1.jsonl': (b'{"id": "a", "caption": "A man walks."}\n{"id": "b", "caption": "caf\xe9 au lait"}\n',
                              r'latin1.jsonl:2: not valid UTF-8 \(byte 66'),
             'list.jsonl': (b'{"id": "a", "caption": "A man walks."}\n["b", "A dog runs."]\n',
                            r'list.jsonl:2: expected a JSON object .*got a list'),
             'rows.json': (b'[{"id": "a", "caption": "A man walks."}, ["b", "A dog runs."]]',
                           r'rows.json: row 2: expected a JSON object, got list'),
             'empty.jsonl': (b'', r'empty.jsonl: the input has no rows')}
    for name, (data, msg) in cases.items():
        (tmp_path/name).write_bytes(data)
        r = run('recipes.generate', [tmp_path/name, tmp_path/f'out-{name}.jsonl', '--quiet'], {})
        assert r.returncode != 0 and re.search(msg, r.stderr) and 'out-' not in r.stderr.splitlines()[-1], (
            name,
            r.stderr[-1500:],
        )
    inp = tmp_path/'in.jsonl'
    append_jsonl(
        inp,
        [
            {'id': f'c{i}', 'caption': 'A man in a red jacket walks across a small park holding a blue ball.'}
            for i in range(2)
        ],
    )
    with FakeClaude(responder=rule_responder()) as srv:
        srv.inject('unknown_id')
        r = run(
            'recipes.generate',
            [
                inp,
                tmp_path / 'chains.jsonl',
                '--mutator',
                'claude',
                '--model',
                'claude-fake',
                '--tagger',
                'keywords',
                '--types',
                ','.join(rule_types()),
                '--length',
                3,
                '--batch',
                '--poll_interval',
                0.01,
                '--quiet',
                '--json',
            ],
            dict(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url),
        )
        n_req = len(srv.requests)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert (
        s['unknown_results'] == 1
        and s['finished'] == 2
        and re.search(r"custom_id '[\w-]+-unknown', which no recorded request has", r.stderr)
    )
    assert (
        n_req == 2 * 2 + 1
    )  # two steps for each of two chains, and the one whose result came back unknown asked again once
