"""System tests: nothing is silently mixed or lost (fingerprints, locks, bad values, bad items, memory).

Each test is one misuse or fault case that once exited 0 with mixed or corrupted data. They run the real
command-line programs in subprocesses (`python -m rcc_rank.recipes.generate|train|evaluate_cli`), talk to Claude through
the real `anthropic` SDK pointed at the local fake server (`rcc_rank.testing.fake_claude`, faults injected), and
kill processes with real signals.
"""
import os, re, sys, json, time, signal, subprocess, textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from conftest import ENV as _ENV
ENV = {
    k: v for k, v in _ENV.items() if k not in ('ANTHROPIC_API_KEY', 'ANTHROPIC_BASE_URL')
}  # no real key or endpoint reaches a test

from rcc_rank.core.basics import append_jsonl, read_jsonl
from rcc_rank.data.chains import read_chains, write_chains
from rcc_rank.testing.fake_claude import FakeClaude, request_text
from rcc_rank.data.mutators import rule_types, RuleMutator
from rcc_rank.testing.responders import rule_responder
from rcc_rank.data.builder import build_chains
from rcc_rank.data.run_files import side_paths

FAKE_KEY = 'sk-ant-FAKEKEY-rcc-rank-iss16-0000'

def run(module, args, env=None, timeout=300, **kw):
    "Run `python -m rcc_rank.<module> ARGS` to the end; returns the CompletedProcess (text)"
    return subprocess.run([sys.executable, '-m', f'rcc_rank.{module}', *map(str, args)], env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, **kw)

def start(module, args, env=None, log=None):
    "Start `python -m rcc_rank.<module> ARGS` in the background; output to `log`"
    f = open(log, 'wb')
    p = subprocess.Popen([sys.executable, '-m', f'rcc_rank.{module}', *map(str, args)], env={**ENV, **(env or {})},
                         stdout=f, stderr=subprocess.STDOUT)
    p.logfile = f
    return p

def snapshot(folder):
    "{name: bytes} of every file in `folder` (to show a refused run changed nothing)"
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(Path(folder).rglob('*'))
        if p.is_file() and not p.name.endswith('.lock')
    }

CAPS = [
    ('A man in a red jacket walks across a small park holding a blue ball. '
     'A brown dog runs behind a wooden bench while three birds fly above.'),
    ('Two girls in green dresses ride red bicycles quickly down a long hill near a small white house. '
     'Then the camera pans left.'),
    ('A woman with a black hat pours hot coffee into a white cup, then she sits on a wooden chair '
     'next to two small dogs.'),
    ('An old man opens a brown door and carries a heavy box into a dark room. '
     'A yellow cat sits on the left of the door.'),
    'A tall boy kicks a white ball across a wide field while two dogs run behind him under a grey sky.',
]

def items(n=5, edit=None):
    out = [
        {'id': f'clip-{i}', 'caption': CAPS[i % len(CAPS)] + (f' Scene {i}.' if i >= len(CAPS) else '')}
        for i in range(n)
    ]
    if edit is not None: out[edit]['caption'] = out[edit]['caption'].replace('red', 'purple').replace('green', 'orange')
    return out

# ------------------------------------------------------------------------------------------- generation

def claude_args(out, inp, *extra):
    return [
        inp,
        out,
        '--mutator',
        'claude',
        '--model',
        'claude-fake',
        '--tagger',
        'keywords',
        '--types',
        ','.join(rule_types()),
        '--length',
        4,
        '--seed',
        0,
        '--backoff',
        0.01,
        '--timeout',
        5,
        '--quiet',
        '--json',
        *extra,
    ]

def test_generation_resume_refuses_other_captions_or_settings_before_any_request(tmp_path):
    ("Edited captions, or --seed/--length/--types changed, into the same output: refused, naming the id and fields; "
     "--overwrite starts over")
    inp, out = tmp_path/'in.jsonl', tmp_path/'chains.jsonl'
    append_jsonl(inp, items())
    with FakeClaude(responder=rule_responder(), retry_after=0.01) as srv:
        env = dict(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=srv.base_url)
        r = run('recipes.generate', claude_args(out, inp), env)
        assert r.returncode == 0, r.stderr[-3000:]
        before, n_req = snapshot(tmp_path), len(srv.requests)
        # 1. the same ids, one caption edited
        edited = tmp_path / 'edited.jsonl'
        append_jsonl(edited, items(edit=1))
        r = run('recipes.generate', claude_args(out, edited), env)
        assert r.returncode != 0
        assert "chain 'clip-1' (chains.jsonl) was made with another configuration: input caption text" in r.stderr, (
            r.stderr[-2000:]
        )
        # 2. other settings
        args = claude_args(out, inp)
        args[args.index('--length') + 1], args[args.index('--seed') + 1], args[args.index('--types') + 1] = (
            6,
            7,
            'colour,count',
        )
        r = run('recipes.generate', args, env)
        assert r.returncode != 0
        msg = r.stderr.strip().splitlines()[-1]
        assert (
            "chain 'clip-" in msg
            and 'seed 0 -> 7' in msg
            and 'length 4 -> 6' in msg
            and "-> ['colour', 'count']" in msg
        ), msg
        assert len(srv.requests) == n_req, 'a refused run sent requests'
        now = snapshot(tmp_path)
        assert {k: now[k] for k in before} == before and set(now) - set(before) == {'edited.jsonl'}, (
            'a refused run changed files'
        )
        # 3. --overwrite moves the old files aside and starts over with the new settings
        r = run('recipes.generate', args + ['--overwrite'], env)
        assert r.returncode == 0, r.stderr[-3000:]
    aside = sorted(p.name for p in tmp_path.glob('chains.*.old-*'))
    assert any(n.startswith('chains.jsonl.old-') for n in aside) and any(
        n.startswith('chains.progress.jsonl.old-') for n in aside
    ), aside
    chains = read_chains(out)
    assert len(chains) == 5 and len({c.id for c in chains}) == 5
    for c in chains:
        fp = c.meta['fingerprint']
        assert (fp['seed'], fp['length'], fp['types']) == (7, 6, ['colour', 'count']), fp
    for r in read_jsonl(side_paths(out)['progress']): assert r['fingerprint']['seed'] == 7

def test_generation_exits_nonzero_when_no_chain_finishes(tmp_path):
    "Every request 429, or a 4xx the API will never accept: the summary is printed, then a non-zero exit"
    inp = tmp_path / 'in.jsonl'
    append_jsonl(inp, items(3))
    with FakeClaude(responder=rule_responder(), retry_after=0.001) as srv:
        srv.inject('429', times=100_000)
        env = dict(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=srv.base_url)
        r = run('recipes.generate', claude_args(tmp_path/'a.jsonl', inp, '--max_retries', 0), env)
    assert r.returncode != 0, r.stdout[-2000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])            # the summary still comes first
    assert s['unfinished'] == 3 and s['finished'] == 0
    assert '3 of 3 chain(s) unfinished' in r.stderr and 'a.failures.jsonl' in r.stderr, r.stderr[-2000:]
    with FakeClaude(responder=rule_responder()) as srv:           # a wrong base path: 404 not_found_error on every call
        env = dict(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=srv.base_url + '/no-such-api')
        r = run('recipes.generate', claude_args(tmp_path/'b.jsonl', inp), env)
    assert r.returncode != 0
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s['fatal_errors'] >= 1 and s['unfinished'] == 3, s
    assert 'fatal error(s) (a 4xx other than 429' in r.stderr
    assert FAKE_KEY not in r.stdout + r.stderr

def test_malformed_last_input_line_is_an_error_naming_file_and_line(tmp_path):
    inp = tmp_path / 'in.jsonl'
    append_jsonl(inp, items(3))
    with open(inp, 'a') as f: f.write('{"id": "clip-9", "caption": "A red ca')
    r = run('recipes.generate', [inp, tmp_path/'out.jsonl', '--length', 3, '--quiet'])
    assert r.returncode != 0 and f'{inp}:4: not valid JSON' in r.stderr, r.stderr[-2000:]
    assert not (tmp_path/'out.jsonl').exists()

def test_one_writer_per_generation_output(tmp_path):
    ("Three rcc-generate on one output: the second and third exit at once naming the first one's pid; "
     "no chain is written twice")
    inp, out = tmp_path/'in.jsonl', tmp_path/'out.jsonl'
    append_jsonl(inp, items(400))
    args = [inp, out, '--length', 6, '--concurrency', 4, '--quiet']
    first = start('recipes.generate', args, log=tmp_path/'first.log')
    prog = side_paths(out)['progress']
    t0 = time.time()
    while not (prog.exists() and prog.stat().st_size) and time.time() - t0 < 60:
        time.sleep(0.02)  # the first is writing
    others = [start('recipes.generate', args, log=tmp_path/f'other{i}.log') for i in range(2)]
    still_running = first.poll() is None
    for p in [first, *others]:
        p.wait(timeout=300)
        p.logfile.close()
    assert first.returncode == 0, (tmp_path/'first.log').read_text()[-2000:]
    assert still_running, 'the first writer finished before the others started; the test proves nothing'
    for i, p in enumerate(others):
        log = (tmp_path/f'other{i}.log').read_text()
        assert p.returncode != 0 and f'process {first.pid} holds' in log, log[-2000:]
    ids = [r['id'] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == 400

def test_check_chains_rejects_duplicate_ids(tmp_path):
    "A chains file with an id twice (two writers, or a file appended twice) stops training naming the id"
    from rcc_rank.testing.fixtures import write_test_video
    v = write_test_video(tmp_path/'v.mp4', n=4, size=(32, 32))
    build_chains([dict(it, video=str(v)) for it in items(4)], RuleMutator(), 3, 0, tmp_path/'c.jsonl', progress=False)
    chains = read_chains(tmp_path/'c.jsonl')
    write_chains(chains + chains[:1], tmp_path/'dup.jsonl')
    r = run(
        'training.train',
        [
            '--train_data',
            tmp_path / 'dup.jsonl',
            '--output_dir',
            tmp_path / 'run',
            '--cpu',
            '--log_with',
            'none',
            '--batch_size',
            2,
            '--max_steps',
            1,
            '--num_frames',
            2,
            '--eval_every',
            0,
            '--save_every',
            0,
        ],
    )
    assert r.returncode != 0 and f"train_data: duplicate chain id '{chains[0].id}'" in r.stderr, r.stderr[-2000:]

# --------------------------------------------------------------------------------------------- training

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "4 chains of 3 captions, each with its own tiny video"
    from rcc_rank.testing.fixtures import write_test_video
    d = tmp_path_factory.mktemp('iss16_train')
    rows = [
        dict(it, video=str(write_test_video(d / f'v{i}.mp4', n=4 + i, size=(32, 32)))) for i, it in enumerate(items(4))
    ]
    build_chains(rows, RuleMutator(), 3, 0, d/'chains.jsonl', progress=False)
    assert len(read_chains(d/'chains.jsonl')) == 4
    return d

def targs(data, out, steps, *extra):
    return [
        '--model',
        'tiny:qwen2_5_vl',
        '--cpu',
        '--num_frames',
        2,
        '--lr',
        1e-3,
        '--batch_size',
        2,
        '--warmup_steps',
        0,
        '--log_every',
        1,
        '--eval_every',
        0,
        '--save_every',
        2,
        '--keep_checkpoints',
        0,
        '--log_with',
        'none',
        '--train_data',
        data / 'chains.jsonl',
        '--output_dir',
        out,
        '--max_steps',
        steps,
        *extra,
    ]

def test_bad_float_settings_are_refused_naming_the_field(data, tmp_path):
    for field in ('lr', 'beta'):
        r = run('training.train', targs(data, tmp_path/field, 2, f'--{field}', 'inf'))
        assert r.returncode != 0 and f'TrainConfig.{field}: must be a finite number (got inf)' in r.stderr, r.stderr[
            -2000:
        ]
        assert not (tmp_path/field/'final').exists()
    r = run('recipes.generate', [data/'chains.jsonl', tmp_path/'g.jsonl', '--timeout', 'nan', '--quiet'])
    assert r.returncode != 0 and '--timeout: must be a finite number' in r.stderr, r.stderr[-2000:]

def test_training_refuses_mixed_runs_and_logs_each_step_once(data, tmp_path):
    "A kill mid-run then a resume, a reused output_dir, a resume with other settings or data: nothing mixes"
    out = tmp_path/'run'
    # killed after its step-4 checkpoint with step 5 logged, then resumed: each step logged once
    p = start('training.train', targs(data, out, 8, '--resume', 'latest'), log=tmp_path/'killed.log')
    t0 = time.time()
    while not (out/'checkpoints'/'step_0000004'/'trainer_state.json').exists():
        assert p.poll() is None, (tmp_path/'killed.log').read_text()[-3000:]
        assert time.time() - t0 < 240
        time.sleep(0.05)
    t1 = time.time()
    while len(read_jsonl(out/'history.jsonl')) < 5 and p.poll() is None and time.time() - t1 < 60: time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.logfile.close()
    logged = [h['step'] for h in read_jsonl(out/'history.jsonl')]
    assert not (out/'final').exists() and 5 in logged, logged
    r = run('training.train', targs(data, out, 8, '--resume', 'latest'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert [h['step'] for h in read_jsonl(out/'history.jsonl')] == list(range(1, 9)), logged
    before = snapshot(out)
    # a fresh run into the used folder
    r = run('training.train', targs(data, out, 3))
    assert (
        r.returncode != 0
        and f'output_dir {out} already holds a run' in r.stderr
        and '--overwrite_output_dir' in r.stderr
    ), r.stderr[-2000:]
    # a resume with another objective, lr, schedule, LoRA shape, freeze_vision and data
    other = data / 'other.jsonl'
    write_chains(read_chains(data / 'chains.jsonl')[::-1], other)
    r = run('training.train', targs(data, out, 10, '--resume', 'latest', '--objective', 'mpo', '--lr', 5e-3,
                                    '--min_lr_ratio', 0.1, '--lora_r', 8, '--freeze_vision', '--train_data', other))
    assert r.returncode != 0
    msg = r.stderr.strip().splitlines()[-1]
    for s in ("objective: 'rank' -> 'mpo'", 'lr: 0.001 -> 0.005', 'min_lr_ratio: 0.0 -> 0.1', 'lora_r: 16 -> 8',
              'freeze_vision: False -> True', 'data: the training chains differ'): assert s in msg, msg
    print(msg)
    assert snapshot(out) == before, 'a refused run changed the output folder'
    # --overwrite_output_dir replaces the old run: its checkpoints are gone, so resume latest cannot pick the old step 8
    r = run('training.train', targs(data, out, 2, '--overwrite_output_dir'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (out/'checkpoints').iterdir()) == ['step_0000002']
    assert [h['step'] for h in read_jsonl(out/'history.jsonl')] == [1, 2]

def test_one_writer_per_training_output_dir(data, tmp_path):
    out = tmp_path/'run'
    p = start('training.train', targs(data, out, 40, '--save_every', 0), log=tmp_path/'first.log')
    t0 = time.time()
    while not ((out/'.lock').exists() and (out/'.lock').read_text().strip()):
        assert p.poll() is None and time.time() - t0 < 120, (tmp_path/'first.log').read_text()[-2000:]
        time.sleep(0.02)
    r = run('training.train', targs(data, out, 2, '--resume', 'latest'), timeout=120)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.logfile.close()
    assert alive and r.returncode != 0 and f'process {p.pid} holds' in r.stderr, r.stderr[-2000:]

def test_corrupt_video_is_named_before_training_or_skipped(data, tmp_path):
    chains = read_chains(data/'chains.jsonl')
    bad = tmp_path / 'corrupt.mp4'
    bad.write_bytes(Path(chains[2].video).read_bytes()[:300])  # a truncated download
    chains[2].video = str(bad)
    write_chains(chains, tmp_path/'chains.jsonl')
    args = targs(tmp_path, tmp_path/'run', 2)
    r = run('training.train', args)
    assert r.returncode != 0
    assert f"train_data: chain '{chains[2].id}': video {bad} cannot be decoded" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path/'run'/'checkpoints').exists() and not (tmp_path/'run'/'history.jsonl').exists()
    r = run('training.train', args + ['--skip_bad_videos', '--json'])
    assert r.returncode == 0, r.stderr[-3000:]
    rec = read_jsonl(tmp_path/'run'/'bad_videos.jsonl')
    assert [(x['id'], x['video']) for x in rec] == [(chains[2].id, str(bad))]
    assert json.loads(r.stdout.strip().splitlines()[-1])['steps'] == 2

# ----------------------------------------------------------------------------------------------- judges

def judge_reply(body):
    pred = re.search(r'<prediction>\n(.*?)\n</prediction>', request_text(body), re.S).group(1)
    if 'THE-BAD-ONE' in pred: rel = 42                                  # out of range, every time
    else: rel = 3 if 'red' in pred else 8
    return {
        'tool_use': {
            'name': 'record_scores',
            'input': {'relevance': rel, 'descriptiveness': 7, 'temporal_consistency': 7, 'fluency': 9},
        }
    }

def test_judge_failures_are_named_counted_and_contained(tmp_path):
    from rcc_rank.evaluation.judges import JudgeCache, CAPTION_PROMPT_VERSION
    ref = 'A man walks a blue dog.'
    rows = [
        dict(id='a', prediction='A man walks a blue dog.', reference=ref),
        dict(id='b', prediction='THE-BAD-ONE', reference=ref),
        dict(id='c', prediction='A man walks a red dog.', reference=ref),
    ]
    append_jsonl(tmp_path/'caps.jsonl', rows)
    cache = tmp_path/'cache.jsonl'
    # a tampered cached score for item a: 42 on a 1-10 scale
    append_jsonl(
        cache,
        {
            'key': JudgeCache.key('caption', rows[0]['prediction'], ref, 'claude:claude-fake', CAPTION_PROMPT_VERSION),
            'value': {'relevance': 42, 'descriptiveness': 7, 'temporal_consistency': 7, 'fluency': 9},
        },
    )
    with FakeClaude(responder=judge_reply) as srv:
        env = dict(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=srv.base_url)
        args = [
            'judge',
            '--data',
            tmp_path / 'caps.jsonl',
            '--out',
            tmp_path / 'judge.json',
            '--cache',
            cache,
            '--judge',
            'claude:claude-fake',
            '--quiet',
        ]
        r = run('evaluation.evaluate_cli', args, env, timeout=120)
        n_bad = sum('THE-BAD-ONE' in request_text(b) for b in srv.requests)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])         # one item failed
    assert n_bad >= 2, 'the out-of-range reply was not retried'
    res = json.loads((tmp_path/'judge.json').read_text())
    assert [x['id'] for x in res['per_item']] == ['a', 'c'] and res['n_failed'] == 1
    assert res['failures'][0]['id'] == 'b' and 'got 42' in res['failures'][0]['error']
    assert res['relevance'] == pytest.approx((8 + 3) / 2)               # the tampered 42 was not served
    assert "item(s) failed: ['b']" in r.stderr
    # a missing field names the item and the field
    append_jsonl(tmp_path/'missing.jsonl', [rows[0], {'id': 'x', 'prediction': 'p'}])
    r = run(
        'evaluation.evaluate_cli',
        ['judge', '--data', tmp_path / 'missing.jsonl', '--cache', 'none', '--judge', 'claude:claude-fake', '--quiet'],
        dict(ANTHROPIC_API_KEY=FAKE_KEY),
        timeout=120,
    )
    assert r.returncode != 0 and "item 'x' (line 2) has no 'reference' field" in r.stderr, r.stderr[-2000:]
    assert 'KeyError' not in r.stderr

def test_one_writer_per_judge_cache(tmp_path):
    from rcc_rank.evaluation.judges import JudgeCache
    append_jsonl(tmp_path/'caps.jsonl', [dict(id='a', prediction='A dog.', reference='A dog.')])
    held = JudgeCache(tmp_path/'cache.jsonl')  # this process is the cache's writer
    r = run(
        'evaluation.evaluate_cli',
        [
            'judge',
            '--data',
            tmp_path / 'caps.jsonl',
            '--cache',
            tmp_path / 'cache.jsonl',
            '--judge',
            'claude:claude-fake',
            '--quiet',
        ],
        dict(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL='http://127.0.0.1:9'),
        timeout=120,
    )
    del held
    assert r.returncode != 0 and f'process {os.getpid()} holds' in r.stderr, r.stderr[-2000:]

# ------------------------------------------------------------------------------------------------ memory

def test_tagger_cache_is_bounded_in_bytes(tmp_path):
    "150 distinct 320-word captions (about 13 MiB of tags) under a 1 MiB budget: memory stays near the budget"
    code = textwrap.dedent('''
        import tracemalloc, json
        from rcc_rank.data import errors
        tracemalloc.start()
        base = ' '.join(['A man in a red shirt throws two yellow balls to a small brown dog on the green grass.'] * 16)
        for i in range(150): errors.applicable_types(f'Clip {i}. ' + base, tagger='keywords')
        cur, _ = tracemalloc.get_traced_memory()
        print(json.dumps(dict(traced=cur, n=len(errors._CACHE))))
    ''')
    r = subprocess.run(
        [sys.executable, '-c', code],
        env={**ENV, 'RCC_RANK_TAG_CACHE_MB': '1'},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m['n'] < 150 and m['traced'] < 4 * 2**20, m
