"""FSDP2 on CPU: PyTorch's `fully_shard` over a two-process gloo mesh, for every registered model family.

accelerate enables FSDP only on accelerators, so these tests drive `fully_shard` directly with the wrap policy
`rcc-train` hands accelerate (each block the family's adapter names in `fsdp_blocks`, then the root). One pair of
processes (`torchrun`, `tests/fsdp2_cpu_worker.py`) runs every family; each family's checks are a test:
a rank step and an SFT step equal one unsharded process on the same global batch (the DDP test's tolerance), the
LoRA adapter gathered to rank 0 equals the unsharded one, and a sharded `torch.distributed.checkpoint` saved and
resumed gives bitwise the same next step. What stays GPU-only (accelerate's own FSDP2 prepare and its state-dict
options) is run by `bench/gpu.sh`.
"""
import json, subprocess, sys
from pathlib import Path
import pytest
from conftest import ENV

ROOT = Path(__file__).resolve().parent
try:
    from rcc_rank.modeling.family import FAMILIES
    ARCHS = sorted(FAMILIES)
except ImportError:   # before the family registry: the two families of the first release
    ARCHS = ['qwen2_5_vl', 'perception_lm']


@pytest.fixture(scope='module')
def fsdp2_results(tmp_path_factory):
    d = tmp_path_factory.mktemp('fsdp2_cpu')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29631',
           str(ROOT/'fsdp2_cpu_worker.py'), ','.join(ARCHS), str(d/'results.json')]
    p = subprocess.run(cmd, env={**ENV, 'OMP_NUM_THREADS': '1'}, cwd=d, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads((d/'results.json').read_text())


@pytest.mark.parametrize('arch', ARCHS)
def test_fsdp2_cpu_step_gather_and_resume(fsdp2_results, arch):
    r = fsdp2_results[arch]
    assert 'error' not in r, r.get('traceback', r.get('error'))
    assert r['world_size'] == 2
    for objective in ('rank', 'sft'):
        o = r[objective]
        assert o['blocks'] and o['n_blocks'] >= 2 and o['dtensor'], (
            o
        )  # the family's blocks were sharded; every weight is a DTensor
        assert o['init_equal'], 'both processes must start from the same weights'
        assert abs(o['loss_one'] - o['loss_two']) < 1e-4 * max(1.0, abs(o['loss_one'])), o
        s = o['step_vs_one']
        assert s['moved'] > 1e-4, s                                      # the step did move the adapter
        assert s['max'] < 5e-5 and s['mean'] < 1e-7, s                   # the DDP test's tolerance
        g = o['gathered_init_vs_unsharded']
        assert g['max'] == 0.0 and g['n'] == s['n'], g  # gathered to rank 0: the unsharded adapter, exactly
        assert o['loaded_equal'] and o['resume_bitwise'] and o['resume_moved'] > 0, o
        assert o['lost_requires_grad'] == [], o[
            'lost_requires_grad'
        ]  # the reference pass (adapters off) leaves every weight training
