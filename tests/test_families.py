"""Every registered model family (`rcc_rank.modeling.family.FAMILIES`) on its tiny random-weight twin: the split
shared-prefix path gives the plain path's log-probs and gradients; a 2-step rank run with LoRA on language and vision
under gradient checkpointing (reference log-probs precomputed); `rcc-evaluate rank` and `generate` on the adapter; the
merged `rcc-export` folder opens with `AutoModelForImageTextToText` and scores as the adapter does; frozen-vision and
full fine-tuning builds; FSDP2 block names that resolve on the model."""
import os
import numpy as np
import pytest, torch
from safetensors.torch import load_file

from conftest import CAPTIONS
os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
torch.set_num_threads(1)

from rcc_rank.modeling.models import tiny_model, add_lora, vision_modules
from rcc_rank.modeling.family import FAMILIES, family
from rcc_rank.data.chains import Chain, Mutation, write_chains
from rcc_rank.modeling.scoring import ChainCollator, chain_logps, compare_paths
from rcc_rank.testing.fixtures import write_test_video
from rcc_rank.training.config import TrainConfig
from rcc_rank.training.policy import build_model
from rcc_rank.training.train import train
from rcc_rank.training.export import export_model, load_adapter
from rcc_rank.evaluation.evaluate_cli import evaluate_task

FAMS = sorted(FAMILIES)
RUN = dict(cpu=True, num_frames=4, lr=1e-2, batch_size=2, warmup_steps=0, log_every=1, eval_every=0, save_every=0,
           log_with='none', chain_length=3, max_steps=2, objective='rank', gradient_checkpointing=True,
           precompute_ref_logps=True, lora_r=4)


@pytest.fixture(scope='module')
def chains_file(tmp_path_factory):
    "Three 3-caption chains over tiny video files of different lengths"
    d = tmp_path_factory.mktemp('families')
    chains = []
    for i, cap in enumerate(CAPTIONS[:3]):
        v = write_test_video(d/f'v{i}.mp4', n=6 + 2 * i, size=(32, 32))
        caps = [cap, f'Nothing moves in clip {i}.', 'A dog.']
        chains.append(Chain(f'v{i}', caps, [Mutation('action', 'a', 'b'), Mutation('count', 'c', 'd')], video=str(v),
                            meta={'split': 'train'}))
    write_chains(chains, d/'chains.jsonl')
    return d/'chains.jsonl'


def _chains():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8)
    return [Chain('a', ['A red ball rolls left.', 'A blue cube slides to the right.'], meta={'frames': f}),
            Chain('b', ['Two.', 'Three green cubes.', 'One.'], meta={'frames': f[:2], 'prompt': 'Describe the clip.'})]


@pytest.mark.parametrize('arch', FAMS)
def test_split_prefix_equals_plain(arch):
    "Log-probs and gradients of the split shared-prefix path equal K full sequences (LoRA on language and vision)"
    model, proc = tiny_model(arch, seed=1)
    model = add_lora(model, r=4)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.05)
    batch = ChainCollator(proc, num_frames=4)(_chains())
    r = compare_paths(model, batch, shared=True)
    assert r['max_abs_logp_diff'] < 1e-4 and r['grad_rel_diff'] < 1e-4, r
    vis = tuple(f'.{a}.' for a in family(arch).vision + family(arch).projector)
    model.zero_grad()
    chain_logps(model, batch).logps.sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if 'lora_B' in n and any(v in n for v in vis)]
    assert grads and max(g.abs().max().item() for g in grads if g is not None) > 0, (
        f"{arch}: no gradient reached the vision LoRA"
    )


@pytest.mark.parametrize('arch', FAMS)
def test_rank_run_evaluate_export(arch, chains_file, tmp_path):
    ("2 rank steps with vision LoRA and checkpointing; evaluate rank/generate on the adapter; "
     "merged export scores the same")
    out = tmp_path/'run'
    train(TrainConfig(model=f'tiny:{arch}', train_data=str(chains_file), output_dir=str(out), **RUN))
    assert (out/'ref_logps.safetensors').exists()
    vis = tuple(f'.{a}.' for a in family(arch).vision + family(arch).projector)
    w = load_file(str(out/'final'/'adapter_model.safetensors'))
    moved = [k for k, v in w.items() if 'lora_B' in k and any(s in k for s in vis) and v.abs().max() > 0]
    assert moved, f"{arch}: the vision adapters did not move"
    res = evaluate_task('rank', data=str(chains_file), adapter=str(out/'final'), num_frames=4, quiet=True)
    assert len(res['per_chain']) == 3, res
    gen = evaluate_task('generate', data=str(chains_file), adapter=str(out/'final'), num_frames=4, max_new_tokens=3,
                        quiet=True, out=str(tmp_path/'caps.jsonl'))
    assert (tmp_path/'caps.jsonl').exists(), gen
    merged = export_model(out/'final', tmp_path/'merged')
    from transformers import AutoModelForImageTextToText, AutoProcessor
    m2 = AutoModelForImageTextToText.from_pretrained(merged, use_safetensors=True).eval()
    lm, proc = load_adapter(out/'final')
    batch = ChainCollator(AutoProcessor.from_pretrained(merged), num_frames=4)(_chains())
    with torch.no_grad(): a, b = chain_logps(lm, batch).logps, chain_logps(m2, batch).logps
    assert (a - b).abs().max() < 1e-4, (a, b)


@pytest.mark.parametrize('arch', FAMS)
def test_frozen_full_builds_and_fsdp_blocks(arch):
    "freeze_vision: no trainable weight on the vision side; full fine-tuning trains everything; FSDP2 names resolve"
    frozen, _ = build_model(TrainConfig(model=f'tiny:{arch}', freeze_vision=True, lora_r=4))
    vis = [p for m in vision_modules(frozen).values() for p in m.parameters()]
    assert vis and not any(p.requires_grad for p in vis)
    assert any(p.requires_grad for p in frozen.parameters())
    full, _ = build_model(TrainConfig(model=f'tiny:{arch}', finetune='full'))
    assert all(p.requires_grad for p in full.parameters())
    blocks = family(arch).fsdp_blocks(full)
    present = {type(m).__name__ for m in full.modules()}
    lm_layer = type(family(arch).roles(full)['language'].layers[0]).__name__
    assert blocks and set(blocks) <= present and lm_layer in blocks, (blocks, lm_layer)
