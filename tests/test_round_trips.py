"""Round trips between the commands: what `rcc-generate` writes, `rcc-train`, `rcc-evaluate` and `rcc-experiment`
read as they are. Question chains train and evaluate; the Table 1 data baselines (`rcc-generate --baseline`) feed
`rcc-experiment`, offline with the rule back end and through the fake Claude server with the real SDK."""
import json, subprocess, sys
from pathlib import Path

import pytest

from conftest import ENV, CAPTIONS

FAKE_KEY = 'sk-ant-FAKEKEY-roundtrip-0000'


def cli(name:str, *args, cwd:Path, env:dict|None=None, ok:bool=True)->subprocess.CompletedProcess:
    "Run console script `name` (through its entry point, as pip would install it) in `cwd`; with `ok` it must exit 0"
    mod, fn = {
        'generate': ('rcc_rank.recipes.generate', 'rcc_generate'),
        'train': ('rcc_rank.training.train', 'rcc_train'),
        'evaluate': ('rcc_rank.evaluation.evaluate_cli', 'rcc_evaluate'),
        'experiment': ('rcc_rank.views.experiments', 'rcc_experiment'),
    }[name]
    exe = (
        cwd / f'.rcc-{name}.py'
    )  # a file, as pip's console script is: fastcore's `call_parse` reads argv only below a module
    exe.write_text(f"import sys\nfrom {mod} import {fn}\nsys.exit({fn}())\n")
    r = subprocess.run(
        [sys.executable, exe, *map(str, args), *(['--json'] if name != 'experiment' else [])],
        cwd=cwd,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 or not ok, (
        f'rcc-{name} {args} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}'
    )
    return r


@pytest.fixture(scope='module')
def own(tmp_path_factory)->Path:
    "A folder with captions.jsonl and tiny videos, as a user's own data"
    from rcc_rank.testing.fixtures import write_test_video
    d = tmp_path_factory.mktemp('round_trips')
    (d/'videos').mkdir()
    rows = []
    for i, cap in enumerate(CAPTIONS[:8]):
        write_test_video(d/'videos'/f'clip{i:03d}.mp4', n=8, size=(32, 32))
        rows.append(dict(id=f'clip{i:03d}', caption=cap, video=f'videos/clip{i:03d}.mp4'))
    (d/'captions.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return d


def test_mcq_question_chains_train_and_evaluate(own):
    "`rcc-generate --questions mcq` output trains 2 steps with `rcc-train` and is ranked by `rcc-evaluate rank`"
    cli('generate', 'captions.jsonl', 'chains.jsonl', '--length', 4, '--test_size', 0.25, '--questions', 'mcq',
        '--quiet', cwd=own)
    q = own/'chains.questions.jsonl'
    rows = [json.loads(l) for l in q.read_text().splitlines()]
    assert len(rows) == 8 and {r['kind'] for r in rows} == {'mcq'}
    cli('train', '--train_data', q.name, '--model', 'tiny:qwen2_5_vl', '--max_steps', 2, '--batch_size', 2,
        '--num_frames', 2, '--output_dir', 'runs/mcq', cwd=own)
    steps = [json.loads(l).get('step') for l in (own/'runs/mcq/history.jsonl').read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 2 and (own/'runs/mcq/final/adapter_config.json').exists()
    cli('evaluate', 'rank', '--adapter', 'runs/mcq/final', '--data', q.name, '--split', 'test', '--num_frames', 2,
        '--quiet', '--out', 'rank.json', cwd=own)
    e = json.loads((own/'rank.json').read_text())
    n_test = sum(r['meta'].get('split') == 'test' for r in rows)
    assert e['n_chains'] == n_test > 0 and 'note' not in e   # the note is for yes/no chains only


def _experiment_yaml(path:Path, data:Path)->Path:
    cfg = {'name': 'baseline_round_trip',
           'base': {'model': 'tiny:qwen2_5_vl', 'max_steps': 1, 'batch_size': 2, 'num_frames': 2,
                    'save_every': 0, 'log_every': 1, 'warmup_steps': 0, 'eval_batch_size': 2},
           'data': {'source': f'file:{data}', 'test_source': f'file:{data}', 'n_train': 0, 'n_test': 2, 'length': 4,
                    'seed': 0},
           'eval': ['rank'],
           'grid': {'method': [{'name': 'Error Injection (MPO)', 'data': f'file:{data}', 'objective': 'mpo'}]},
           'table': {'rows': 'method', 'metrics': ['rank/top1', 'rank/pairwise']}}
    path.write_text(json.dumps(cfg))   # JSON is YAML
    return path


def test_error_injection_baseline_feeds_rcc_experiment(own):
    "`rcc-generate --baseline error_injection --mutator rules` writes chains that `rcc-experiment` trains and evaluates"
    out = own/'pvd-baselines'/'error_injection.jsonl'
    args = ('captions.jsonl', out, '--baseline', 'error_injection', '--mutator', 'rules', '--length', 4,
            '--test_size', 0.25, '--quiet')
    cli('generate', *args, cwd=own)
    first = out.read_text()
    chains = [json.loads(l) for l in first.splitlines()]
    assert len(chains) == 8 and all(
        len(c['captions']) == 4 and c['meta']['baseline'] == 'error_injection' for c in chains
    )
    cli('generate', *args, cwd=own)
    assert out.read_text() == first   # a rerun resumes: nothing new
    cli('experiment', _experiment_yaml(own/'ei.yaml', out), '--out', own/'exp', cwd=own)
    res = [json.loads(l) for l in (own/'exp'/'baseline_round_trip.jsonl').read_text().splitlines()]
    assert len(res) == 1 and 'Error Injection (MPO)' in json.dumps(res[0]) and 'rank/top1' in json.dumps(res[0]), res


def test_judge_baselines_through_fake_claude(tmp_path):
    ("response_comparison and rlaif_v ask an LLM judge: through the real SDK against the fake server; "
     "the rule back end is refused")
    from rcc_rank.testing.fake_claude import FakeClaude
    from rcc_rank.testing.responders import teacher_responder
    from rcc_rank.synthetic.world_data import world_item

    (tmp_path / 'world.jsonl').write_text(
        ''.join(json.dumps(world_item(i)) + '\n' for i in range(3))
    )  # world rows: a simulated policy
    r = cli('generate', 'world.jsonl', 'x.jsonl', '--baseline', 'rlaif_v', cwd=tmp_path, ok=False)
    assert r.returncode != 0 and 'needs an LLM judge: use --mutator claude' in r.stderr
    with FakeClaude(responder=teacher_responder()) as srv:
        env = dict(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=srv.base_url)
        for name in ('response_comparison', 'rlaif_v'):
            before = len(srv.requests)
            cli('generate', 'world.jsonl', f'{name}.jsonl', '--baseline', name, '--mutator', 'claude',
                '--model', 'claude-fake', '--length', 3, '--quiet', cwd=tmp_path, env=env)
            chains = [json.loads(l) for l in (tmp_path/f'{name}.jsonl').read_text().splitlines()]
            assert len(chains) > 0 and len(srv.requests) > before
            assert all(c['meta']['baseline'] == name and len(c['captions']) == 2 for c in chains)
        assert srv.requests and all(q['model'] == 'claude-fake' for q in srv.requests)


def test_question_chains_score_alike_on_every_path():
    ("An MCQ chain (shared question) and a yes/no chain (questions in the continuations) in one batch: "
     "every shared-prefix path gives the full sequences' log-probs and gradients")
    import numpy as np, torch
    from rcc_rank.data.chains import Chain, Mutation
    from rcc_rank.data.questions import question_chains
    from rcc_rank.modeling.models import tiny_model
    from rcc_rank.modeling.scoring import ChainCollator, compare_paths
    torch.set_num_threads(1)
    ch = Chain('c1', ['A man in a red shirt throws two balls to the left.',
                      'A man in a blue shirt throws two balls to the left.',
                      'A man in a blue shirt throws three balls to the left.'],
               [Mutation('colour', 'red', 'blue'), Mutation('count', 'two', 'three')])
    qs = [q.to_chain() for q in question_chains([ch], ['mcq', 'yesno'])]
    m, proc = tiny_model('qwen2_5_vl')
    batch = ChainCollator(proc, num_frames=2, frames=lambda c: np.zeros((2, 32, 32, 3), np.uint8))(qs)
    assert (
        int((batch['cont_mask'][1, 0] & ~batch['score_mask'][1, 0]).sum()) > 5
    )  # the yes/no question rides in the continuation
    for way in (True, 'packed', 'cache'):
        r = compare_paths(m, batch, shared=way)
        assert r['max_abs_logp_diff'] < 1e-4 and r['grad_rel_diff'] < 1e-4, (way, r)
