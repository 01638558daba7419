"""System tests for video -> models -> scoring that do not fit a notebook: the benchmark script end to end, and
randomised chain batches (lengths, K, padding, prompts) where the two scoring paths must agree."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parent.parent

from rcc_rank.data.chains import Chain
from rcc_rank.modeling.models import tiny_model, add_lora, load_model, save_model
from rcc_rank.modeling.scoring import ChainCollator, chain_logps, compare_paths
from rcc_rank.testing.fixtures import write_test_video

WORDS = 'a red blue green ball cube rolls slides left right table camera then stops quickly slowly two three'.split()

@pytest.fixture(scope='module')
def qwen(): return tiny_model('qwen2_5_vl', seed=1)

@pytest.fixture(scope='module')
def plm(): return tiny_model('perception_lm', seed=1)

def random_chains(rng, n, size=56, frames=8):
    chains = []
    for i in range(n):
        k = int(rng.integers(1, 5))
        caps = [' '.join(rng.choice(WORDS, int(rng.integers(1, 12)))).capitalize() + '.' for _ in range(k)]
        meta = {'frames': rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)}
        if rng.random() < 0.3 and k > 1:
            meta['prompts'] = [
                f'Question {j}: ' + ' '.join(rng.choice(WORDS, int(rng.integers(1, 5)))) + '?' for j in range(k)
            ]
        chains.append(Chain(f'r{i}', caps, meta=meta))
    return chains

@pytest.mark.parametrize('arch', ['qwen2_5_vl', 'perception_lm'])
@pytest.mark.parametrize("seed", [0])
def test_random_batches_paths_agree(arch, seed, qwen, plm):
    model, proc = qwen if arch == 'qwen2_5_vl' else plm
    chains = random_chains(np.random.default_rng(seed), 5)
    batch = ChainCollator(proc)(chains)
    for way in ('packed', 'cache'):
        r = compare_paths(model, batch, shared=way)
        assert r['max_abs_logp_diff'] < 1e-4, (way, r)
        assert r['grad_rel_diff'] < 1e-4 and r['max_param_grad_rel_diff'] < 1e-4, (way, r)
    s = chain_logps(model, batch)
    assert torch.equal(s.mask, batch['mask']) and (s.logps[s.mask] < 0).all() and (s.logps[~s.mask] == 0).all()
    assert torch.equal(s.ntokens > 0, s.mask)

def test_file_videos_and_saved_model(tmp_path, qwen):
    "Chains pointing at video files, scored by a model that went through save/load; LoRA adapters round-trip"
    model, proc = qwen
    clips = [write_test_video(tmp_path / f'v{i}.mp4', n=12 + 6 * i, size=(56, 56)) for i in range(2)]
    chains = [Chain('f0', ['A red square moves right.', 'A red square moves left.'], video=str(clips[0])),
              Chain('f1', ['A square.', 'Two squares.', 'Three squares move.'], video=str(clips[1]))]
    save_model(model, proc, tmp_path / 'm')
    m2, p2 = load_model(tmp_path / 'm')
    batch = ChainCollator(p2, num_frames=4)(chains)
    a, b = chain_logps(model, batch), chain_logps(m2, batch, shared_prefix=False)
    assert (a.logps - b.logps).abs().max() < 1e-4
    peft_model = add_lora(m2, r=2)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.05)
    pol = chain_logps(peft_model, batch).logps.detach()
    peft_model.save_pretrained(tmp_path / 'adapter')
    from peft import PeftModel
    again = PeftModel.from_pretrained(load_model(tmp_path / 'm')[0], tmp_path / 'adapter')
    assert (chain_logps(again, batch).logps - pol).abs().max() < 1e-5
    assert (pol - a.logps).abs().max() > 1e-3          # the adapters changed the scores

def test_bench_script_json():
    "The benchmark runs end to end (shrunk) and prints one JSON object with the documented fields"
    cmd = [sys.executable, str(ROOT / 'bench' / 'scoring.py'), '--arch', 'qwen2_5_vl', '--tiny', '--ks', '2', '3',
           '--frames', '4', '--image-size', '56', '--caption-tokens', '12', '--repeats', '1']
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(res) == {'arch', 'device', 'prefix_tokens', 'caption_tokens', 'results'}
    assert res['caption_tokens'] == 12 and res['prefix_tokens'] > 8
    assert [r['K'] for r in res['results']] == [2, 3]
    for r in res['results']:
        assert set(r) == {
            'K',
            'naive_s',
            'shared_s',
            'speedup',
            'ideal_speedup',
            'naive_peak_mb',
            'shared_peak_mb',
            'max_abs_diff',
        }
        assert r['max_abs_diff'] < 1e-4 and r['naive_s'] > 0 and r['shared_s'] > 0 and r['ideal_speedup'] > 1
