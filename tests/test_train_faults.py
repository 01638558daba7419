"""System tests: what training leaves on disk is never stale, half-written or silently lost.

- the reference table (`precompute_ref_logps`) follows the videos and the weights: the same ids and captions
  pointed at other videos, or another base model, recompute it (equal to a fresh run's table), with a log line;
- sizes are bounded: a chain of 45,000-character captions stops before the first step naming the limit, and
  `num_frames` has a cap;
- a damaged newest checkpoint and a damaged table are named, the resume falls back to the checkpoint before;
- a full disk is named with the path being written (a real ENOSPC: the run writes on a 256 KiB tmpfs);
- SIGTERM (preemption) saves a checkpoint, says where, exits 143, and `--resume latest` continues;
- `rcc-export` killed half-way leaves no output folder that blocks a rerun.
"""
import os, sys, json, time, signal, shutil, logging, subprocess
from pathlib import Path

import pytest, torch
from safetensors.torch import load_file

from conftest import ENV, CAPTIONS
os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
torch.set_num_threads(1)

from rcc_rank.core.basics import read_jsonl
from rcc_rank.data.chains import read_chains, write_chains
from rcc_rank.data.mutators import RuleMutator
from rcc_rank.data.builder import build_chains
from rcc_rank.testing.fixtures import write_test_video
from rcc_rank.training.config import TrainConfig, MAX_FRAMES
from rcc_rank.training.train import train

FAST = dict(model='tiny:qwen2_5_vl', cpu=True, num_frames=2, lr=1e-3, batch_size=2, warmup_steps=0, log_every=1,
            eval_every=0, save_every=0, log_with='none', objective='rank', precompute_ref_logps=True)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "4 three-caption chains on videos a/, and the same ids and captions on other videos (b/)"
    d = tmp_path_factory.mktemp('faults')
    for s in 'ab': (d/s).mkdir()
    rows = [
        dict(
            id=f'v{i}', caption=CAPTIONS[i], video=str(write_test_video(d / 'a' / f'v{i}.mp4', n=4 + i, size=(32, 32)))
        )
        for i in range(4)
    ]
    build_chains(rows, RuleMutator(), 3, 0, d/'chains.jsonl', progress=False)
    other = read_chains(d/'chains.jsonl')
    for i, c in enumerate(other): c.video = str(write_test_video(d/'b'/f'v{i}.mp4', n=12 + 3 * i, size=(32, 32)))
    write_chains(other, d/'other.jsonl')
    return d


def table(run):   # a copy, not a view of the file
    return {k: v.clone() for k, v in load_file(str(Path(run)/'ref_logps.safetensors')).items()}


def gap(a, b): return max(float((a[k] - b[k]).abs().max()) for k in a)


def cli(args, **kw):
    return [
        sys.executable,
        '-m',
        'rcc_rank.training.train',
        *[a for k, v in args.items() for a in (f'--{k}', str(v)) if v is not True],
        *[f'--{k}' for k, v in args.items() if v is True],
        '--json',
    ]   # the result as one JSON line


def test_reference_table_follows_the_videos_and_the_weights(data, tmp_path, caplog):
    run, fresh = tmp_path/'run', tmp_path/'fresh'
    train(TrainConfig(**FAST, max_steps=1, train_data=str(data/'chains.jsonl'), output_dir=str(run)))
    old = table(run)
    # the case: same ids and captions, other videos, --overwrite_output_dir into the old folder
    train(
        TrainConfig(
            **FAST, max_steps=1, train_data=str(data / 'other.jsonl'), output_dir=str(run), overwrite_output_dir=True
        )
    )
    train(TrainConfig(**FAST, max_steps=1, train_data=str(data/'other.jsonl'), output_dir=str(fresh)))
    assert gap(table(run), table(fresh)) == 0.0 and gap(old, table(fresh)) > 1e-3
    # a stored table beside a new run is reused only when made from the same: other videos, then another base model
    for name in ('stale', 'beside'):
        (tmp_path / name).mkdir()
        shutil.copy2(fresh / 'ref_logps.safetensors', tmp_path / name / 'ref_logps.safetensors')
    made = lambda: [r.getMessage() for r in caplog.records if 'was made from other inputs' in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger='rcc_rank'):
        train(TrainConfig(**FAST, max_steps=1, train_data=str(data/'chains.jsonl'), output_dir=str(tmp_path/'stale')))
        assert len(made()) == 1 and 'videos: ' in made()[0] and 'weights' not in made()[0], made()
        caplog.clear()
        train(
            TrainConfig(
                **FAST, max_steps=1, seed=1, train_data=str(data / 'other.jsonl'), output_dir=str(tmp_path / 'beside')
            )
        )
        assert len(made()) == 1 and 'weights: ' in made()[0] and 'videos' not in made()[0], (
            made()
        )  # seed 1: other tiny weights
    assert gap(table(tmp_path/'stale'), old) < 1e-6 and gap(table(tmp_path/'beside'), table(fresh)) > 1e-3


def test_oversized_caption_stops_before_a_step_naming_the_limit(data, tmp_path):
    chains = read_chains(data/'chains.jsonl')
    long = chains[1]
    long.captions = [
        c + ' ' + ('The camera slowly pans across the wide green field. ' * 900)[:45_000] for c in long.captions
    ]
    t0 = time.perf_counter()
    with pytest.raises(
        ValueError,
        match=rf"train_data: chain '{long.id}', caption 0: \d+ tokens \(45\d+ characters\), "
        rf"over max_caption_tokens=2048",
    ):
        train(TrainConfig(**FAST, max_steps=1, output_dir=str(tmp_path/'run')), train_chains=chains)
    assert not (tmp_path/'run'/'history.jsonl').exists()
    print(f'refused in {time.perf_counter() - t0:.1f} s')
    with pytest.raises(ValueError, match=f'TrainConfig.num_frames: at most {MAX_FRAMES} frames per video'):
        TrainConfig(**{**FAST, 'num_frames': 100_000})


def test_damaged_checkpoint_and_table_are_named_and_the_resume_falls_back(data, tmp_path):
    args = dict(FAST, train_data=data/'chains.jsonl', output_dir=tmp_path/'run', save_every=2, keep_checkpoints=0)
    train(
        TrainConfig(
            **{**args, 'train_data': str(args['train_data']), 'output_dir': str(args['output_dir'])}, max_steps=4
        )
    )
    run = tmp_path / 'run'
    good = table(run)
    ad = run/'checkpoints'/'step_0000004'/'adapter'/'adapter_model.safetensors'
    ad.write_bytes(ad.read_bytes()[:1000])  # truncated checkpoint file
    ref = run / 'ref_logps.safetensors'
    ref.write_bytes(ref.read_bytes()[:100])  # truncated table
    r = subprocess.run(
        cli({**args, 'max_steps': 5, 'resume': 'latest'}), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'checkpoint {run}/checkpoints/step_0000004 is damaged ({ad}: ' in r.stderr and 'falling back' in r.stderr, (
        r.stderr[-3000:]
    )
    assert f'reference table {ref} cannot be read' in r.stderr, r.stderr[-3000:]
    assert [h['step'] for h in read_jsonl(run / 'history.jsonl')] == [
        1,
        2,
        3,
        4,
        5,
    ]  # steps 3, 4 again from step 2, each logged once
    assert gap(table(run), good) == 0.0                                                 # recomputed: the same table


def _private_tmpfs():
    "The `unshare` flags that give a private mount namespace here (root: -m; others: a user namespace too), or None"
    for flags in (['-m'], ['-rm']) if os.geteuid() == 0 else (['-rm'],):
        if (
            shutil.which('unshare')
            and subprocess.run(
                ['unshare', *flags, 'mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', '/mnt'], capture_output=True
            ).returncode
            == 0
        ): return flags
    return None


def test_full_disk_is_named(data, tmp_path):
    flags = _private_tmpfs()
    if flags is None:
        pytest.skip('no private mount namespace to mount a small tmpfs in (unshare -m / -rm not permitted)')
    out = tmp_path / 'small'
    out.mkdir()
    args = dict(
        FAST, train_data=data / 'chains.jsonl', output_dir=out, save_every=1, max_steps=2, precompute_ref_logps=False
    )
    cmd = ' '.join(f"'{a}'" for a in cli(args))
    r = subprocess.run(['unshare', *flags, 'sh', '-c', f"mount -t tmpfs -o size=256k tmpfs '{out}' && exec {cmd}"],
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    err = [line for line in r.stderr.splitlines() if line.startswith('OSError')]
    assert (
        err
        and f'OSError: [Errno 28] disk full: could not write checkpoint step_0000001 to '
        f'{out}/checkpoints/.tmp_step_0000001'
        in err[-1]
    ), r.stderr[-3000:]
    print(err[-1])


def test_sigterm_saves_a_checkpoint_and_exits_then_resumes(data, tmp_path):
    run = tmp_path/'run'
    args = dict(FAST, train_data=data/'chains.jsonl', output_dir=run, max_steps=500, precompute_ref_logps=False)
    with open(tmp_path/'log', 'wb') as f:
        p = subprocess.Popen(cli(args), env=ENV, stdout=f, stderr=subprocess.STDOUT)
        t0 = time.time()
        while not ((run/'history.jsonl').exists() and (run/'history.jsonl').read_text().strip()):
            assert p.poll() is None and time.time() - t0 < 240, (tmp_path/'log').read_text()[-3000:]
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    log = (tmp_path/'log').read_text()
    assert p.returncode == 143, (p.returncode, log[-3000:])
    ck = sorted((run/'checkpoints').iterdir())[-1]
    step = json.loads((ck/'trainer_state.json').read_text())['step']
    assert f'rcc-train: SIGTERM at step {step} of 500: saved checkpoint {ck}; continue with --resume latest' in log, (
        log[-3000:]
    )
    assert 0 < step < 500 and not (run/'final').exists()
    r = subprocess.run(
        cli({**args, 'max_steps': step + 1, 'resume': 'latest'}), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])['steps'] == step + 1


def test_killed_export_leaves_no_folder_that_blocks_a_rerun(data, tmp_path):
    train(
        TrainConfig(
            **{**FAST, 'precompute_ref_logps': False},
            max_steps=1,
            train_data=str(data / 'chains.jsonl'),
            output_dir=str(tmp_path / 'run'),
        )
    )
    out, part = tmp_path/'merged', tmp_path/'.merged.partial'
    exe = shutil.which('rcc-export', path=str(Path(sys.executable).parent)) or shutil.which(
        'rcc-export'
    )  # the console script
    cmd = [exe, str(tmp_path/'run'/'final'), str(out)]
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (part.exists() or out.exists()):
        assert p.poll() is None and time.time() - t0 < 240, 'the export ended before it wrote anything'
        time.sleep(0.002)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not out.exists() or (out/'README.md').exists(), 'a killed export left a partial output folder'
    if out.exists(): pytest.skip('the export finished before the kill landed')
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out/'model.safetensors').exists() and (out/'README.md').exists() and not part.exists()
