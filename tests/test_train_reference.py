"""Full fine-tuning, precomputed reference log-probs and cached collation in `rcc_rank.training.train`
(tiny models, CPU, seconds).

- `precompute_ref_logps=True` and `cache_batches=True` give the same losses and weights as scoring the reference and
  collating at every step, under LoRA and under full fine-tuning;
- `finetune='full'` moves every weight (embeddings included), `freeze_vision` keeps the vision side fixed, and the saved
  model loads back with `load_model`;
- `tiny:<arch>?hidden=..` builds a model of the asked size.
"""
import shutil
import os
import pytest, torch
from safetensors import safe_open

os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
torch.set_num_threads(1)

from rcc_rank.synthetic.world import render_frames
from rcc_rank.synthetic.world_data import world_chains
from rcc_rank.modeling.models import load_model, vision_modules
from rcc_rank.training.train import TrainConfig, train, build_model
from rcc_rank.training.policy import tiny_spec

FAST = dict(model='tiny:qwen2_5_vl?hidden=32&layers=1&vision_hidden=16&vision_depth=1', cpu=True, num_frames=4, lr=1e-2,
            batch_size=4, warmup_steps=0, log_every=1, eval_every=0, save_every=0, max_steps=3, log_with='none',
            mixed_precision='no', objective='rank', beta=1.0)

@pytest.fixture(scope='module')
def chains():
    chs = world_chains(8, 4, seed=3)
    for c in chs: c.meta['frames'] = render_frames(c.meta['scene'], 4, 56)
    return chs

def _weights(res): return {n: p.detach().clone() for n, p in res['model'].named_parameters()}

@pytest.mark.parametrize('finetune', ['lora', 'full'])
def test_precomputed_reference_and_cache_match_online(finetune, chains, tmp_path):
    online = train(
        TrainConfig(**FAST, finetune=finetune, output_dir=str(tmp_path / 'a')), train_chains=chains, return_model=True
    )
    fast = train(
        TrainConfig(
            **FAST, finetune=finetune, precompute_ref_logps=True, cache_batches=True, output_dir=str(tmp_path / 'b')
        ),
        train_chains=chains,
        return_model=True,
    )
    la, lb = [h['loss'] for h in online['history']], [h['loss'] for h in fast['history']]
    assert la[0] != la[-1]                       # the run moved, so the reference mattered after step 1
    assert max(abs(a - b) for a, b in zip(la, lb)) < 1e-5, (la, lb)
    wa, wb = _weights(online), _weights(fast)
    assert max((wa[n] - wb[n]).abs().max().item() for n in wa) < 1e-5
    with safe_open(str(tmp_path/'b'/'ref_logps.safetensors'), 'pt') as f:   # stored with the run, one entry per chain
        assert sorted(f.keys()) == sorted(c.id for c in chains) and f.metadata()['finetune'] == finetune
    c = tmp_path / 'c'
    c.mkdir()
    shutil.copy2(
        tmp_path / 'b' / 'ref_logps.safetensors', c / 'ref_logps.safetensors'
    )  # a new run beside a stored table
    stamp = (c/'ref_logps.safetensors').stat().st_mtime_ns
    again = train(
        TrainConfig(**FAST, finetune=finetune, precompute_ref_logps=True, cache_batches=True, output_dir=str(c)),
        train_chains=chains,
    )               # reused from the file (not rewritten): same losses
    assert (c/'ref_logps.safetensors').stat().st_mtime_ns == stamp
    assert max(abs(a - h['loss']) for a, h in zip(lb, again['history'])) < 1e-6

def test_full_finetuning_moves_every_weight_and_freezes_vision(chains, tmp_path):
    start, _ = build_model(TrainConfig(**FAST, finetune='full'))
    w0 = {n: p.detach().clone() for n, p in start.named_parameters()}
    res = train(
        TrainConfig(**FAST, finetune='full', freeze_vision=True, output_dir=str(tmp_path / 'f')),
        train_chains=chains,
        return_model=True,
    )
    m = res['model']
    assert not hasattr(m, 'peft_config')
    vis = {n for mod in vision_modules(m).values() for n, _ in mod.named_parameters()}
    moved = {n for n, p in m.named_parameters() if not torch.equal(p, w0[n])}
    emb = [n for n, _ in m.named_parameters() if 'embed_tokens' in n]
    assert emb and set(emb) <= moved                       # LoRA never touches the embedding; full fine-tuning does
    is_vis = lambda n: any(n.endswith(v) for v in vis)
    assert vis and not any(is_vis(n) for n in moved)       # freeze_vision: the vision side stays as it was
    assert {n for n in w0 if not is_vis(n)} == moved       # every other weight trained
    back, _ = load_model(res['adapter_dir'])
    sd = dict(back.named_parameters())
    assert all(torch.equal(sd[n], p) for n, p in m.named_parameters())

def test_tiny_sizes_are_honoured():
    assert tiny_spec('tiny:qwen2_5_vl?hidden=48&layers=3') == ('qwen2_5_vl', dict(hidden=48, layers=3))
    m, _ = build_model(TrainConfig(model='tiny:qwen2_5_vl?hidden=48&layers=3', finetune='full'))
    assert m.config.get_text_config().hidden_size == 48 and m.config.get_text_config().num_hidden_layers == 3
    with pytest.raises(ValueError, match='bad size setting'): tiny_spec('tiny:qwen2_5_vl?hiden=48')
    with pytest.raises(ValueError, match='finetune'): TrainConfig(finetune='qlora')
