"""System tests of `rcc_rank.training.train` on CPU with tiny random-weight models.

- every objective lowers its own loss on a small fixed set of chains in a few steps;
- two DDP processes (gloo) end with the same adapter weights as one process with the same global batch,
  and so do two accumulated micro-batches;
- a run SIGKILLed after a checkpoint and resumed ends bitwise equal to an uninterrupted run;
- the command line: `--help` lists every config field, a YAML file plus overrides, `python -m rcc_rank.training.train`.
"""
import os, sys, json, time, signal, shutil, subprocess
from dataclasses import fields
from pathlib import Path

import pytest, torch
from safetensors.torch import load_file

from conftest import ENV, CAPTIONS, LAUNCH_TWO
os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
torch.set_num_threads(1)

from rcc_rank.data.chains import read_chains, write_chains
from rcc_rank.data.mutators import RuleMutator
from rcc_rank.data.builder import build_chains
from rcc_rank.objectives.losses import OBJECTIVES
from rcc_rank.testing.fixtures import write_test_video
from rcc_rank.training.train import TrainConfig, train, parse_config, save_config
from rcc_rank.training.config import config_parser


# small everything: 4 frames of 32x32, 3-caption chains, 4 chains per step
FAST = dict(model='tiny:qwen2_5_vl', cpu=True, num_frames=4, lr=1e-3, batch_size=4, warmup_steps=0, log_every=1,
            eval_every=0, save_every=0, log_with='none', chain_length=3)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Chains made by the rule back end, each with its own tiny video file; 4 train + 2 test"
    d = tmp_path_factory.mktemp('train_data')
    items = []
    for i, cap in enumerate(CAPTIONS[:6]):   # six videos: four train, two held out
        v = write_test_video(d/f'v{i}.mp4', n=6 + i, size=(32, 32))
        items.append(dict(id=f'v{i}', caption=cap, video=str(v), meta={'split': 'train' if i < 4 else 'test'}))
    build_chains(items, RuleMutator(), length=3, seed=0, out_path=d/'raw.jsonl')
    chains = read_chains(d/'raw.jsonl')
    assert len(chains) == 6 and all(len(c.captions) == 3 for c in chains), [len(c.captions) for c in chains]
    write_chains(chains, d/'chains.jsonl')
    return d/'chains.jsonl'


def adapter(run_dir):
    return load_file(str(Path(run_dir)/'final'/'adapter_model.safetensors'))


@pytest.mark.parametrize('objective', OBJECTIVES)
def test_objective_lowers_its_loss(objective, data, tmp_path):
    # one global batch = the 4 training chains, constant lr: every step sees the same fixed set
    r = train(TrainConfig(**FAST, objective=objective, train_data=str(data), max_steps=4, min_lr_ratio=1.0,
                          output_dir=str(tmp_path/objective)))
    losses = [h['loss'] for h in r['history']]
    assert len(losses) == 4 and all(map(lambda x: x == x, losses)), losses
    assert losses[-1] < losses[0] - 1e-4, (objective, losses)
    assert r['nan_steps'] == 0 and (tmp_path/objective/'final'/'adapter_config.json').exists()


def _cli(data, out, steps, **kw):
    args = dict(FAST, train_data=str(data), output_dir=str(out), max_steps=steps, **kw)
    return [a for k, v in args.items() for a in (f'--{k}', str(v))] + ['--json']   # the result as one JSON line


@pytest.mark.parametrize('objective,opt', [('lipo', ['--lipo_gain_base', '3']),
                                           ('listnet', ['--listnet_temperature', '0.5']),
                                           ('pl_topk', ['--pl_topk_k', '1'])])
def test_cli_listwise_objectives(objective, opt, data, tmp_path, capsys):
    "`rcc-train --objective lipo|listnet|pl_topk` with its setting runs two steps and saves the setting with the run"
    from rcc_rank.training.train import rcc_train
    from rcc_rank.training.config import load_config
    rcc_train(_cli(data, tmp_path/objective, 2, objective=objective) + opt)
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res['steps'] == 2 and res['nan_steps'] == 0 and res['train']['loss'] == res['train']['loss'], res
    cfg = load_config(tmp_path/objective/'final'/'config.yaml')
    assert cfg.objective == objective and str(getattr(cfg, opt[0][2:])) in (opt[1], str(float(opt[1])))


def test_two_processes_match_one(data, tmp_path):
    args = dict(objective='rank', max_steps=3, batch_size=4, min_lr_ratio=1.0)
    one = train(TrainConfig(**{**FAST, **args}, train_data=str(data), output_dir=str(tmp_path/'one')))
    cmd = [
        *LAUNCH_TWO,
        '--main_process_port',
        '29517',
        '-m',
        'rcc_rank.training.train',
    ] + _cli(data, tmp_path / 'two', 3, objective='rank', min_lr_ratio=1.0)
    p = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res['num_processes'] == 2 and res['steps'] == 3
    a, b = adapter(tmp_path/'one'), adapter(tmp_path/'two')
    assert a.keys() == b.keys() and len(a) > 0
    moved = max(float(v.abs().max()) for k, v in a.items() if 'lora_B' in k)
    assert moved > 1e-3  # the adapters did train
    # gradients agree to float round-off (different batch padding and reduction order); Adam divides by
    # sqrt(v), which turns round-off in tiny gradients into differences of a few % of one step (lr=1e-3)
    # in a handful of weights. A sharding mistake (other chains in the batch) would move them by ~lr.
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert diffs.max() < 5e-5 and diffs.mean() < 1e-7, (float(diffs.max()), float(diffs.mean()))
    # both ranks logged the same losses: the global batch is identical
    h1 = [h['loss'] for h in one['history']]
    h2 = [json.loads(l)['loss'] for l in (tmp_path/'two'/'history.jsonl').read_text().splitlines()]
    torch.testing.assert_close(torch.tensor(h1), torch.tensor(h2), rtol=1e-4, atol=1e-5)


def test_gradient_accumulation_matches_one_big_batch(data, tmp_path):
    kw = dict(FAST, objective='rank', train_data=str(data), max_steps=3, min_lr_ratio=1.0)
    train(TrainConfig(**kw, output_dir=str(tmp_path/'ga1')))
    r = train(TrainConfig(**kw, grad_accum=2, output_dir=str(tmp_path/'ga2')))
    assert r['steps'] == 3
    a, b = adapter(tmp_path/'ga1'), adapter(tmp_path/'ga2')
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert diffs.max() < 5e-5 and diffs.mean() < 1e-7, (float(diffs.max()), float(diffs.mean()))


def test_kill_and_resume_is_bitwise_equal(data, tmp_path):
    kw = dict(objective='rank', save_every=2, keep_checkpoints=0, min_lr_ratio=0.1, warmup_steps=1)
    train(TrainConfig(**{**FAST, **kw}, train_data=str(data), max_steps=6, output_dir=str(tmp_path/'full')))
    run = tmp_path/'killed'
    cmd = [sys.executable, '-m', 'rcc_rank.training.train'] + _cli(data, run, 6, **kw)
    p = subprocess.Popen(cmd, env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while not (run/'checkpoints'/'step_0000002'/'trainer_state.json').exists():
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() - t0 < 240, 'no checkpoint after 240 s'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (run/'final').exists(), 'the run finished before it was killed'
    cks = sorted(x.name for x in (run/'checkpoints').iterdir() if not x.name.startswith('.'))
    assert cks[0] == 'step_0000002' and 'step_0000006' not in cks, cks
    r = subprocess.run(cmd + ['--resume', 'latest'], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res['steps'] == 6
    a, b = adapter(tmp_path/'full'), adapter(run)
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k
    # the checkpoint carries the config it was trained with
    assert (run/'checkpoints'/'step_0000006'/'config.yaml').exists() and (run/'final'/'config.yaml').exists()


def test_cli_help_yaml_and_overrides(tmp_path):
    h = config_parser().format_help()
    for f in fields(TrainConfig): assert f'--{f.name}' in h, f.name
    assert 'paper: 1e-6' in h and 'paper: 8' in h
    y = save_config(TrainConfig(objective='mpo', lr=2e-6, chain_length=4), tmp_path/'c.yaml')
    c = parse_config(['--config', str(y), '--lr', '5e-6', '--no-shared_prefix'])
    assert (c.objective, c.lr, c.chain_length, c.shared_prefix) == ('mpo', 5e-6, 4, False)
    # the console script through `accelerate launch` (the `-m rcc_rank.training.train` form runs in the tests above)
    exe = Path(sys.executable).parent/'rcc-train'
    if not exe.exists(): exe = Path(shutil.which('rcc-train') or 'rcc-train')
    assert exe.exists(), "the rcc-train console script is not installed (pip install -e .)"
    p = subprocess.run([sys.executable, '-m', 'accelerate.commands.launch', '--num_processes', '1', '--cpu',
                        str(exe), '--help'],
                       env=ENV, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and '--max_nan_steps' in p.stdout and '--resume' in p.stdout, p.stderr[-2000:]
