"""System tests of the chain generator: faults from a fake Claude server, SIGKILL + resume, no key leaks.

The Claude path runs the real `anthropic` SDK against `rcc_rank.testing.fake_claude.FakeClaude` (real HTTP on
127.0.0.1). Kill/resume tests run `python -m rcc_rank.recipes.generate` (the `rcc-generate` CLI) in a subprocess.
"""
import os, sys, json, time, random, signal, asyncio, logging, subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from rcc_rank.core.basics import read_jsonl, append_jsonl
from rcc_rank.data.chains import Chain, read_chains
from rcc_rank.testing.fake_claude import FakeClaude
from rcc_rank.data.mutators import MalformedReply, rule_types, check_step
from rcc_rank.data.backends import ClaudeMutator, HFMutator, tiny_chat_model
from rcc_rank.testing.responders import rule_responder
from rcc_rank.data.builder import abuild_chains, failures
from rcc_rank.data.run_files import side_paths

FAKE_KEY = 'sk-ant-FAKEKEY-rcc-rank-test-7f3a9c0d2b'

_SUBJ = ['A man', 'A woman', 'Two boys', 'Three girls', 'An elderly man', 'A young woman']
_COL = ['red', 'blue', 'green', 'yellow', 'white', 'black']
_OBJ = ['ball', 'bicycle', 'cup', 'guitar', 'box', 'book']
_SCENE = ['park', 'kitchen', 'beach', 'street', 'garden', 'office']
_ACT = ['walks', 'runs', 'sits', 'stands', 'jumps']
_SPAT = ['to the left of', 'in front of', 'behind', 'next to']

def make_items(n, seed=0):
    "Varied multi-sentence captions"
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s, c, o, sc = rng.choice(_SUBJ), rng.choice(_COL), rng.choice(_OBJ), rng.choice(_SCENE)
        cap = (f'{s} in a {c} jacket {rng.choice(_ACT)} across a small {sc} holding a {rng.choice(_COL)} {o}. '
               f'A brown dog {rng.choice(_ACT)} {rng.choice(_SPAT)} a wooden bench '
               f'while {rng.randint(2, 9)} birds fly above. '
               f'Then the camera pans left as the light turns golden.')
        out.append({'id': f'clip-{i:04d}', 'caption': cap, 'video': f'videos/clip-{i:04d}.mp4'})
    return out

def check_output(path, n_expected, length):
    "Every line complete JSON, no duplicate ids, every chain valid; returns {id: record}"
    raw = Path(path).read_bytes()
    assert raw.endswith(b'\n'), 'output ends with a truncated line'
    lines = raw.decode().splitlines()
    recs = [json.loads(l) for l in lines]            # raises on any truncated/garbled line
    ids = [r['id'] for r in recs]
    assert len(ids) == len(set(ids)), 'duplicate chain ids in the output'
    assert len(ids) == n_expected, (len(ids), n_expected)
    for r in recs:
        ch = Chain.from_dict(r).validate()
        assert len(r['errors']) == len(r['captions']) - 1
        assert len(ch.captions) == length or ch.ended_early, r
    return {r['id']: r for r in recs}

_RUNS = [0]

def cli(args, env=None, logdir=None):
    ("Start `python -m rcc_rank.recipes.generate ARGS`; its stdout+stderr go to a file "
     "(a pipe nobody reads would block it)")
    e = {**os.environ, 'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', **(env or {})}
    _RUNS[0] += 1
    log = Path(logdir or Path(str(args[1])).parent)/f'run-{_RUNS[0]:03d}.log'
    f = open(log, 'wb')
    p = subprocess.Popen(
        [sys.executable, '-m', 'rcc_rank.recipes.generate', *map(str, args)], env=e, stdout=f, stderr=subprocess.STDOUT
    )
    p.log, p.logfile = log, f
    return p

def finish(p, timeout=300):
    "Wait for a CLI run; returns its output text"
    p.wait(timeout=timeout)
    p.logfile.close()
    return p.log.read_text(errors='replace')

def kill_until_done(args, env, progress_file, full_size, rng, kills):
    """Run the CLI, SIGKILL it `kills` times at random points of its work, then let it finish.

    A kill lands once the progress file has grown by a random 5-35% of what is left to write (`full_size`
    is its size after an uninterrupted run), so every kill hits a run in the middle of its work."""
    logs, killed = [], 0
    for attempt in range(kills + 5):
        p = cli(args, env)
        if killed < kills:
            cur = progress_file.stat().st_size if progress_file.exists() else 0
            target = cur + rng.uniform(0.05, 0.35) * max(0, full_size - cur)
            deadline = time.time() + 120
            while (
                p.poll() is None
                and (progress_file.stat().st_size if progress_file.exists() else 0) < target
                and time.time() < deadline
            ):
                time.sleep(0.005)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed += 1
        logs.append(finish(p))
        assert p.returncode in (0, -signal.SIGKILL), logs[-1][-3000:]
        if p.returncode == 0: return logs, killed
    raise AssertionError('the generator never finished')

# --------------------------------------------------------------------------------------------- faults

ITEMS = make_items(4, seed=1)
FAULT_OUTCOME = {   # fault -> failure kind it leaves in the side file (None: absorbed by the SDK's own retries)
    '429': None, '529': None, '500': None, 'drop': None, 'slow': None,
    'malformed': 'malformed', 'refusal': 'refused', 'unchanged': 'invalid', 'wreck': 'invalid'}

@pytest.mark.parametrize('fault', list(FAULT_OUTCOME))
def test_each_fault_is_retried_resampled_or_recorded(fault, tmp_path):
    out = tmp_path/'chains.jsonl'
    with FakeClaude(responder=rule_responder(), retry_after=0.02, slow_seconds=0.6) as srv:
        srv.inject(fault, times=3)
        m = ClaudeMutator(
            model='claude-fake',
            client=srv.async_client(max_retries=3, timeout=0.3),
            types=rule_types(),
            tagger='keywords',
        )
        s = asyncio.run(
            abuild_chains(ITEMS, m, length=4, seed=0, out_path=out, concurrency=2, backoff=0.01, progress=False)
        )
        assert srv.pending == [] and srv.served_faults.count(fault) == 3
    assert s['finished'] == len(ITEMS) and s['unfinished'] == 0
    chains = check_output(out, len(ITEMS), 4)
    kinds = {f['kind'] for f in failures(out)}
    want = FAULT_OUTCOME[fault]
    if want is None: assert kinds <= {'refused'}, kinds       # refusals of the rule responder itself are normal
    else: assert want in kinds, kinds
    for r in chains.values():                                  # no wrecked or unchanged caption slipped into a chain
        for a, b in zip(r['captions'], r['captions'][1:]): assert check_step(a, b) is None

TRANSPORT_FAULTS = ['429', '529', '500', 'drop', 'slow']

def test_both_http_transports_absorb_faults_and_write_the_same_chains(tmp_path, monkeypatch):
    "The client ClaudeMutator builds itself, on httpx and on aiohttp, rides out transport faults to the same chains"
    pytest.importorskip('aiohttp')
    monkeypatch.setenv('ANTHROPIC_API_KEY', FAKE_KEY)
    out = {}
    for http in ('httpx', 'aiohttp'):
        path = tmp_path / f'{http}.jsonl'
        with FakeClaude(responder=rule_responder(), retry_after=0.02, slow_seconds=0.6) as srv:
            for f in TRANSPORT_FAULTS: srv.inject(f)
            m = ClaudeMutator(model='claude-fake', types=rule_types(), tagger='keywords', max_retries=6, timeout=0.3,
                              base_url=srv.base_url, http=http)
            s = asyncio.run(
                abuild_chains(ITEMS, m, length=4, seed=0, out_path=path, concurrency=2, backoff=0.01, progress=False)
            )
            assert srv.pending == [] and sorted(set(srv.served_faults)) == sorted(TRANSPORT_FAULTS), srv.served_faults
        assert s['finished'] == len(ITEMS) and s['api_errors'] == 0, s
        assert {f['kind'] for f in failures(path)} <= {'refused'}   # the rule responder's own refusals only
        out[http] = {c.id: (c.captions, c.errors) for c in read_chains(path)}
    assert out['httpx'] == out['aiohttp']

def test_persistent_api_errors_leave_chain_unfinished_then_resume(tmp_path):
    out = tmp_path/'chains.jsonl'
    with FakeClaude(responder=rule_responder(), retry_after=0.01) as srv:
        m = ClaudeMutator(
            model='claude-fake',
            client=srv.async_client(max_retries=0, timeout=2),
            types=rule_types(),
            tagger='keywords',
        )
        srv.inject('500', times=1000)
        s = asyncio.run(
            abuild_chains(
                ITEMS, m, length=4, seed=0, out_path=out, concurrency=2, max_api_errors=2, backoff=0.01, progress=False
            )
        )
        assert s['finished'] == 0 and s['unfinished'] == len(ITEMS)
        assert {f['kind'] for f in failures(out)} == {'api'}
        assert all('InternalServerError' in f['reason'] for f in failures(out))
        srv.clear_faults()  # the outage ends; the same call resumes
        s2 = asyncio.run(
            abuild_chains(ITEMS, m, length=4, seed=0, out_path=out, concurrency=2, backoff=0.01, progress=False)
        )
    assert s2['finished'] == len(ITEMS)
    check_output(out, len(ITEMS), 4)

def test_batch_mode_faults_and_resume(tmp_path):
    from rcc_rank.data.batches import abuild_chains_batched
    out = tmp_path/'chains.jsonl'
    with FakeClaude(responder=rule_responder(), batch_polls=2, retry_after=0.01) as srv:
        m = ClaudeMutator(
            model='claude-fake', client=srv.async_client(max_retries=3), types=rule_types(), tagger='keywords'
        )
        srv.inject('errored', times=2)
        srv.inject('unchanged')
        srv.inject('refusal')
        srv.inject('500', times=2, on='batches')
        srv.inject('429', on='batches')
        s1 = asyncio.run(abuild_chains_batched(ITEMS, m, 4, 0, out, poll_interval=0, max_wait=0, progress=False))
        assert 'open_batch' in s1
        s2 = asyncio.run(abuild_chains_batched(ITEMS, m, 4, 0, out, poll_interval=0.01, progress=False))
        assert srv.pending == []
    state = read_jsonl(side_paths(out)['batches'])
    submitted = [r['batch_id'] for r in state if r['event'] == 'submitted']
    assert len(submitted) == len(set(submitted)) == s2['batches']        # the open batch was polled, not resubmitted
    assert submitted[0] == s1['open_batch']
    assert s2['finished'] == len(ITEMS)
    check_output(out, len(ITEMS), 4)
    assert {'api', 'invalid', 'refused'} <= {f['kind'] for f in failures(out)}

def test_hf_mutator_tiny_random_model_never_crashes_the_run(tmp_path):
    model, tok = tiny_chat_model(texts=[ITEMS[0]['caption']])
    hm = HFMutator(model, tok, max_new_tokens=8, temperature=0, tagger='keywords')
    with pytest.raises(MalformedReply):
        hm.mutate(Chain(id='x', captions=[ITEMS[0]['caption']]), 'colour', 0)
    s = asyncio.run(
        abuild_chains(ITEMS[:1], hm, length=3, seed=0, out_path=tmp_path / 'hf.jsonl', max_attempts=1, progress=False)
    )
    ch = read_chains(tmp_path/'hf.jsonl')[0]
    assert ch.ended_early == 'no applicable error type left' and s['invalid'] >= 1

# --------------------------------------------------------------------------------------- kill/resume

def test_sigkill_resume_rules_equals_uninterrupted(tmp_path):
    items = make_items(300, seed=2)
    append_jsonl(tmp_path/'in.jsonl', items)
    ref, out = tmp_path/'ref.jsonl', tmp_path/'out.jsonl'
    args = ['--mutator', 'rules', '--length', 6, '--seed', 3, '--concurrency', 16, '--quiet']
    p = cli([tmp_path / 'in.jsonl', ref, *args])
    text = finish(p)
    assert p.returncode == 0, text[-2000:]
    full = side_paths(ref)['progress'].stat().st_size
    logs, killed = kill_until_done(
        [tmp_path / 'in.jsonl', out, *args], {}, side_paths(out)['progress'], full, random.Random(0), kills=4
    )
    assert killed == 4
    a, b = check_output(ref, len(items), 6), check_output(out, len(items), 6)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k]['captions'], a[k]['errors'], a[k]['mutations']) == (
            b[k]['captions'],
            b[k]['errors'],
            b[k]['mutations'],
        ), k
    prog = read_jsonl(side_paths(out)['progress'])
    steps = [(r['id'], r['step']) for r in prog if 'ended_early' not in r]
    assert len(steps) == len(set(steps)), 'a step was recorded twice'

def test_sigkill_resume_fake_claude_and_key_never_leaks(tmp_path, monkeypatch, caplog, capsys):
    items = make_items(40, seed=3)
    append_jsonl(tmp_path/'in.jsonl', items)
    ref, out = tmp_path/'ref.jsonl', tmp_path/'out.jsonl'
    monkeypatch.setenv('ANTHROPIC_API_KEY', FAKE_KEY)
    caplog.set_level(logging.DEBUG, logger='anthropic')
    caplog.set_level(logging.DEBUG, logger='rcc_rank')
    with FakeClaude(responder=rule_responder(), latency=0.01, retry_after=0.01) as srv:
        monkeypatch.setenv('ANTHROPIC_BASE_URL', srv.base_url)
        env = {'ANTHROPIC_LOG': 'debug', 'RCC_RANK_LOG_LEVEL': 'DEBUG'}
        args = ['--mutator', 'claude', '--model', 'claude-fake', '--tagger', 'keywords',
                '--types', ','.join(rule_types()),
                '--length', 5, '--seed', 1, '--concurrency', 6, '--backoff', 0.01, '--timeout', 5]
        # the uninterrupted reference, in this process, with the key read from the environment (no client passed)
        mk = lambda **kw: ClaudeMutator(model='claude-fake', types=rule_types(), tagger='keywords', timeout=5, **kw)
        asyncio.run(
            abuild_chains(items, mk(), length=5, seed=1, out_path=ref, concurrency=6, backoff=0.01, progress=False)
        )
        full = side_paths(ref)['progress'].stat().st_size
        # the CLI in a subprocess, killed twice at random points, then run to the end
        logs, killed = kill_until_done(
            [tmp_path / 'in.jsonl', out, *args], env, side_paths(out)['progress'], full, random.Random(1), kills=2
        )
        # faults while running: the SDK and the builder absorb them
        for f in ['429', '500', 'drop', 'malformed', 'wreck']: srv.inject(f, times=2)
        s = asyncio.run(
            abuild_chains(
                items[:8], mk(), length=5, seed=1, out_path=tmp_path / 'faults.jsonl', backoff=0.01, progress=False
            )
        )
        assert srv.pending == [] and s['finished'] == 8
    # an unreachable server: connection errors are recorded, not raised
    dead = ClaudeMutator(model='claude-fake', types=rule_types(), tagger='keywords', max_retries=0, base_url='http://127.0.0.1:9')
    s = asyncio.run(
        abuild_chains(
            items[:2],
            dead,
            length=5,
            seed=1,
            out_path=tmp_path / 'dead.jsonl',
            max_api_errors=1,
            backoff=0.01,
            progress=False,
        )
    )
    assert s['unfinished'] == 2 and {f['kind'] for f in failures(tmp_path/'dead.jsonl')} == {'api'}
    a, b = check_output(ref, len(items), 5), check_output(out, len(items), 5)
    assert a.keys() == b.keys()
    for k in a: assert (a[k]['captions'], a[k]['errors']) == (b[k]['captions'], b[k]['errors']), k
    assert killed == 2
    # the key is nowhere: subprocess logs (SDK debug logging on), this process's logs and output, files
    assert any('HTTP Request' in l or 'Request options' in l for l in logs), (
        'SDK debug logging was not on; the leak check is weaker'
    )
    captured = capsys.readouterr()
    texts = logs + [caplog.text, captured.out, captured.err] + [f['reason'] for f in failures(tmp_path/'dead.jsonl')]
    assert caplog.text.strip()
    for t in texts: assert FAKE_KEY not in t
    for f in tmp_path.rglob('*'):
        if f.is_file(): assert FAKE_KEY.encode() not in f.read_bytes(), f


def test_parse_workers_cli_writes_the_same_chains(tmp_path, monkeypatch):
    "rcc-generate --parse_workers 1 (the spaCy parse in a worker process) writes what an in-loop parse writes"
    from rcc_rank.data import errors
    from rcc_rank.data.mutators import parse_pool
    from rcc_rank.recipes.generate import generate_command
    items = make_items(12, seed=5)
    append_jsonl(tmp_path / 'in.jsonl', items)
    monkeypatch.setenv('ANTHROPIC_API_KEY', FAKE_KEY)
    out = {}
    with FakeClaude(responder=rule_responder(), latency=0.01) as srv:
        monkeypatch.setenv('ANTHROPIC_BASE_URL', srv.base_url)
        for workers in (1, 0):
            errors._CACHE.clear()   # every caption parsed afresh, in the worker or on the loop
            path = tmp_path / f'w{workers}.jsonl'
            s = generate_command(str(tmp_path / 'in.jsonl'), str(path), mutator='claude', model='claude-fake',
                                 types=','.join(rule_types()), length=4, seed=2, concurrency=6, parse_workers=workers,
                                 quiet=True)
            assert s['finished'] == 12, s
            out[workers] = {c.id: (c.captions, c.errors) for c in read_chains(path)}
    assert parse_pool.cache_info().currsize >= 1
    assert out[1] == out[0]
