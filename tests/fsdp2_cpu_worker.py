"""One rank of the two-process CPU FSDP2 check (`tests/test_fsdp2_cpu.py` starts two with torchrun).

For one model family: the model as `rcc-train` builds it (tiny random weights, LoRA), wrapped with PyTorch's
`fully_shard` on a CPU gloo mesh of two processes, block by block as the family's adapter names them
(`FAMILIES[arch].fsdp_blocks`), then the root. Checks, written as one JSON object by rank 0:
- a rank step and an SFT step, each rank on half the global batch, against one unsharded process on all of it;
- the LoRA adapter gathered to rank 0 (full state dict) against the unsharded model's;
- a sharded checkpoint (torch.distributed.checkpoint, model and optimizer) saved after step 1, loaded into a fresh
  sharded model, and step 2 taken again: bitwise equal to the uninterrupted run.
"""
import json, os, sys, time
import numpy as np, torch, torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.checkpoint.state_dict import (get_state_dict, set_state_dict, get_model_state_dict,
                                                     StateDictOptions)
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import DefaultLoadPlanner
from rcc_rank.data.chains import Chain, Mutation
from rcc_rank.modeling.family import FAMILIES
from rcc_rank.training.policy import build_model, ChainScorer
from rcc_rank.modeling.scoring import ChainCollator
from rcc_rank.training.train import TrainConfig
from rcc_rank.training.setup import make_optimizer
from rcc_rank.training.step import chain_loss

CAPS = [['A red ball rolls left.', 'A blue ball rolls left.', 'A blue cube rolls left.'],
        ['Two dogs run on grass.', 'Three dogs run on grass.', 'Three cats run on grass.'],
        ['A man opens a door slowly.', 'A woman opens a door slowly.', 'A woman closes a door slowly.'],
        ['The camera pans to the right.', 'The camera pans to the left.', 'The camera zooms to the left.']]

def chains():
    rng = np.random.default_rng(0)
    out = [Chain(f'c{i}', caps, [Mutation('x', 'a', 'b'), Mutation('x', 'b', 'c')]) for i, caps in enumerate(CAPS)]
    return out, {c.id: rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8) for c in out}

def scorer(cfg):
    "The model `rcc-train` would build for `cfg` (same seed: identical weights in every process and every call)"
    model, proc = build_model(cfg)
    return ChainScorer(model), proc

def shard(model, arch, mesh):
    "Our wrap policy: each block the family names, then the root"
    hf = model.model.get_base_model()
    names = set(FAMILIES[arch].fsdp_blocks(hf)) if arch in FAMILIES else set(model._no_split_modules)
    assert names, f'{arch}: no FSDP2 blocks'
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    for b in blocks: fully_shard(b, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return sorted(names), len(blocks)

def lora(sd): return {k: v.detach().float().cpu() for k, v in sd.items() if 'lora_' in k}

def diff(a, b):
    assert a.keys() == b.keys() and a, (sorted(a)[:3], sorted(b)[:3])
    d = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    return dict(max=float(d.max()), mean=float(d.mean()), n=len(a),
                moved=max(float(v.abs().max()) for k, v in a.items() if 'lora_B' in k))

def step(model, opt, batch, cfg):
    opt.zero_grad(set_to_none=True)
    loss = chain_loss(model, batch, cfg)[0]
    loss.backward()
    opt.step()
    return float(loss.detach())

def full_lora(model):
    return lora(get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)))

def run_objective(arch, objective, mesh, rank, ckdir):
    cfg = TrainConfig(model=f'tiny:{arch}', cpu=True, num_frames=4, lr=1e-3, objective=objective, chain_length=3,
                      lora_dropout=0.0, batch_size=4, warmup_steps=0)
    cs, frames = chains()
    model, proc = scorer(cfg)
    coll = ChainCollator(proc, num_frames=4, max_captions=1 if objective == 'sft' else 3, frames=frames)
    mine = [cs[2 * rank], cs[2 * rank + 1]]   # each rank: half of the global batch of four
    out = {}
    if rank == 0:   # one unsharded process on the whole batch, two steps
        ref, _ = scorer(cfg)
        ropt = make_optimizer(cfg, ref)[0]
        out['loss_one'] = step(ref, ropt, coll(cs), cfg)
        ref1 = lora(ref.state_dict())
        out['init_equal'] = all(
            torch.equal(a, b)
            for a, b in zip(lora(model.state_dict()).values(), lora(scorer(cfg)[0].state_dict()).values())
        )
    out['blocks'], out['n_blocks'] = shard(model, arch, mesh)
    out['dtensor'] = all(type(p).__name__ == 'DTensor' for p in model.parameters())
    opt = make_optimizer(cfg, model)[0]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    g0 = full_lora(model)
    loss = step(model, opt, coll(mine), cfg)
    losses = [None, None]
    dist.all_gather_object(losses, loss)
    g1 = full_lora(model)
    out['lost_requires_grad'] = sorted(set(trainable) - {n for n, p in model.named_parameters() if p.requires_grad})
    if rank == 0:
        out['loss_two'] = sum(losses) / 2
        out['step_vs_one'] = diff(g1, ref1)
        out['gathered_init_vs_unsharded'] = diff(g0, lora(scorer(cfg)[0].state_dict()))
    out['trainable'] = sum(p.requires_grad for p in model.parameters())
    out['no_optimizer_state'] = sum(
        p.requires_grad and p not in opt.state for p in model.parameters()
    )  # never had a gradient
    msd, osd = get_state_dict(model, opt)
    dcp.save({'model': msd, 'optim': osd}, checkpoint_id=ckdir)
    step(model, opt, coll(mine[::-1]), cfg)
    cont = full_lora(model)
    fresh, _ = scorer(cfg)
    shard(fresh, arch, mesh)
    fopt = make_optimizer(cfg, fresh)[0]
    msd2, osd2 = get_state_dict(fresh, fopt)
    # weights that never had a gradient (PerceptionLM: the vision tower's pooling head, whose output the model does not
    # use) have no optimizer state in the checkpoint; a fresh optimizer's zeros stand for them (AdamW skips them anyway)
    dcp.load({'model': msd2, 'optim': osd2}, checkpoint_id=ckdir, planner=DefaultLoadPlanner(allow_partial_load=True))
    set_state_dict(fresh, fopt, model_state_dict=msd2, optim_state_dict=osd2)
    resumed_before = full_lora(fresh)
    step(fresh, fopt, coll(mine[::-1]), cfg)
    resumed = full_lora(fresh)
    if rank == 0:
        out['loaded_equal'] = all(torch.equal(resumed_before[k], g1[k]) for k in g1)
        out['resume_bitwise'] = cont.keys() == resumed.keys() and all(torch.equal(cont[k], resumed[k]) for k in cont)
        out['resume_moved'] = max(float((cont[k] - g1[k]).abs().max()) for k in cont)
    return out

def run_arch(arch, mesh, rank, folder):
    t, res = time.time(), {'arch': arch, 'world_size': dist.get_world_size()}
    try:
        for objective in ('rank', 'sft'):
            res[objective] = run_objective(arch, objective, mesh, rank, os.path.join(folder, f'ck-{arch}-{objective}'))
            dist.barrier()
    except (
        Exception,
        dcp.api.CheckpointException,
    ) as e:  # recorded, so one family's failure does not hide the others' results
        import traceback

        res['error'] = f'rank {rank}: {type(e).__name__}: {e}'
        res['traceback'] = traceback.format_exc()[-3000:]
    res['seconds'] = round(time.time() - t, 1)
    return res

def main(archs, out_path):
    "Every family in one pair of processes (start-up paid once); results by family to `out_path` (rank 0)"
    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    mesh = init_device_mesh('cpu', (2,))
    res = {a: run_arch(a, mesh, rank, os.path.dirname(os.path.abspath(out_path))) for a in archs.split(',')}
    if rank == 0:
        with open(out_path, 'w') as f: json.dump(res, f)
    dist.destroy_process_group()

if __name__ == '__main__': main(sys.argv[1], sys.argv[2])
