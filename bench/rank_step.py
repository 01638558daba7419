#!/usr/bin/env python3
"""One full `rank` training step at real size: Qwen2.5-VL-3B-config random weights, LoRA on the language model and the
vision encoder, K captions per chain, with and without gradient checkpointing.

    python bench/rank_step.py --device cuda                 # full size, bf16 base weights (bench/gpu.sh runs this)
    python bench/rank_step.py --smoke                       # tiny config on the CPU, a minute at most
    python bench/rank_step.py --device cuda --arch qwen3_vl # another family: random weights at --hidden x --layers

A step is what `rcc_rank.training.train` does per optimizer step with batch 1: the reference pass (adapters off, no graph), the
policy pass and its backward, AdamW on the adapters, through `chain_loss` and `ChainScorer`. For each setting it prints
the median seconds of `--steps` steps after a warm-up step, peak memory, tokens per second and model FLOPs utilisation:

    tokens/step   T = prefix tokens P + K * caption tokens C (one packed sequence; the reference pass sees the same T)
    model FLOPs   F = 6 * N_lm * T + 2 * N_lm * T                       (policy forward+backward, reference forward;
                                                                         N_lm: language-model weights without the embedding)
                    + (6 + 2) * d * vocab * K * C                       (the output layer, only where captions are scored)
                    + 6 * N_vis * V + 2 * N_vis * V                     (vision tower over V patches, same two passes)
                    + (3 + 1) * 4 * n_layers * d * A                    (attention scores and values, A = sum over tokens
                                                                         of the keys each attends to: P(P+1)/2 + K C (P + (C+1)/2))
    MFU           F / (seconds * peak FLOP/s)                           (--peak-tflops; 989 = H100/H200 SXM dense bf16)

N counts every weight a token passes, frozen and LoRA alike (the 6N convention: the backward through frozen weights
still computes input gradients; their unneeded weight gradients are counted as if computed, as MFU does); vision
attention (windows of 64 patches, full attention within a frame in 4 of 32 blocks) is left out, under 1% here.
Recomputation under checkpointing is not counted (it is hardware, not model, FLOPs), so MFU drops with checkpointing.
"""
import argparse, json, os, statistics, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
os.environ.setdefault('MALLOC_MMAP_THRESHOLD_', '65536')   # importing bench/scoring.py must not re-exec this script
import numpy as np
import torch


def flops_per_step(n_lm: int, n_vis: int, tokens: int, patches: int, layers: int, d_attn: int, P: int, K: int, C: int,
                   d: int, vocab: int) -> float:
    "Model FLOPs of one rank step (formula in the module docstring)"
    attended = P * (P + 1) / 2 + K * C * (P + (C + 1) / 2)
    return 8 * n_lm * tokens + 8 * d * vocab * K * C + 8 * n_vis * patches + 4 * 4 * layers * d_attn * attended


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--smoke', action='store_true', help='tiny config on the CPU (checks the script, not the numbers)')
    p.add_argument('--device', default=None)
    p.add_argument('--k', type=int, default=6)
    p.add_argument('--frames', type=int, default=30)
    p.add_argument('--image-size', type=int, default=224)
    p.add_argument('--caption-tokens', type=int, default=150)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--shared', default='split', help="shared_prefix mode of the step ('split', 'packed' or 'false')")
    p.add_argument('--peak-tflops', type=float, default=989.0, help='accelerator peak dense bf16 TFLOP/s for MFU')
    p.add_argument(
        '--arch',
        default='qwen2_5_vl',
        help="model family (transformers' model_type); other than qwen2_5_vl: a "
        "random model of that family at --hidden x --layers (text) and --vision-hidden x --vision-depth",
    )
    p.add_argument('--hidden', type=int, default=2048)
    p.add_argument('--layers', type=int, default=8)
    p.add_argument('--vision-hidden', type=int, default=1024)
    p.add_argument('--vision-depth', type=int, default=8)
    a = p.parse_args()
    from rcc_rank.data.chains import Chain, Mutation
    from rcc_rank.modeling.models import tiny_model, add_lora
    from rcc_rank.modeling.scoring import ChainCollator
    from rcc_rank.training.train import TrainConfig, ChainScorer
    from rcc_rank.training.step import chain_loss
    from rcc_rank.training.policy import enable_checkpointing
    from scoring import full_size_qwen   # bench/scoring.py
    device = torch.device(a.device or ('cpu' if a.smoke or not torch.cuda.is_available() else 'cuda'))
    if a.smoke: a.frames, a.image_size, a.caption_tokens, a.steps = 4, 56, 16, 1
    dtype = torch.float32 if a.smoke else torch.bfloat16
    shared = {'false': False, 'true': True}.get(a.shared, a.shared)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (a.frames, a.image_size, a.image_size, 3), dtype=np.uint8)
    words = ' '.join(
        ['A red ball rolls from the left to the right across a wooden table while a blue cube stays still.'] * 40
    )
    chain = Chain(
        'c0', [f'{i} {words}' for i in range(a.k)], [Mutation('x', 'a', 'b')] * (a.k - 1), meta={'frames': frames}
    )
    cfg = TrainConfig(objective='rank', shared_prefix=shared)
    out = dict(
        device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        smoke=a.smoke,
        arch=a.arch,
        K=a.k,
        frames=a.frames,
        image_size=a.image_size,
        caption_tokens=a.caption_tokens,
        shared_prefix=a.shared,
        base_dtype=str(dtype).replace('torch.', ''),
        peak_tflops=a.peak_tflops,
        load_avg=os.getloadavg(),
        results=[],
    )
    for gc in (False, True):
        if a.smoke: model, proc = tiny_model(a.arch, image_size=a.image_size, frames=a.frames)
        elif a.arch == 'qwen2_5_vl': model, proc = full_size_qwen(device, dtype, a.image_size, a.frames)
        else:
            model, proc = tiny_model(
                a.arch,
                image_size=a.image_size,
                frames=a.frames,
                hidden=a.hidden,
                layers=a.layers,
                heads=16,
                kv_heads=8,
                vision_hidden=a.vision_hidden,
                vision_depth=a.vision_depth,
            )
        model = model.to(dtype)
        model = model.to(device)
        if gc: enable_checkpointing(model)
        model = add_lora(model, r=16, alpha=32)
        for n, q in model.named_parameters():
            if q.requires_grad:
                q.data = q.data.float()  # adapters train in fp32, as in `train` (autocast bf16)
        scorer = ChainScorer(model).to(device).train()
        batch = ChainCollator(proc, num_frames=a.frames, max_caption_tokens=a.caption_tokens)([chain])
        batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        batch['pixel_values_videos'] = batch['pixel_values_videos'].to(dtype)
        params = [q for q in model.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-6)
        hf = model.get_base_model()
        n_vis = sum(q.numel() for q in hf.model.visual.parameters())
        n_lm = (
            sum(q.numel() for q in hf.parameters()) - n_vis - hf.get_input_embeddings().weight.numel()
        )  # tied output layer counted apart
        P, C = int(batch['attention_mask'].sum()), int(batch['cont_mask'][0].sum(-1).max())
        T, V = P + a.k * C, int(batch['pixel_values_videos'].shape[0])
        tc = hf.config.get_text_config()
        F = flops_per_step(
            n_lm,
            n_vis,
            T,
            V,
            tc.num_hidden_layers,
            tc.num_attention_heads * (tc.hidden_size // tc.num_attention_heads),
            P,
            a.k,
            C,
            tc.hidden_size,
            hf.get_input_embeddings().weight.shape[0],
        )
        sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda'):
                loss, aux = chain_loss(scorer, batch, cfg)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(loss)

        loss0 = step()
        sync()  # warm-up (kernels, allocator)
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        times = []
        for _ in range(a.steps):
            sync()
            t = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        r = dict(
            gradient_checkpointing=gc,
            seconds=round(s, 4),
            tokens_per_step=T,
            prefix_tokens=P,
            caption_tokens=C,
            vision_patches=V,
            tokens_per_s=round(T / s, 1),
            model_flops_per_step=float(f'{F:.4g}'),
            n_lm_params=n_lm,
            n_vision_params=n_vis,
            trainable_params=sum(q.numel() for q in params),
            loss_first_step=round(loss0, 4),
            steps_timed=len(times),
        )
        if device.type == 'cuda':
            r.update(peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2), weights_gb=round(base / 2**30, 2),
                     mfu=round(F / s / (a.peak_tflops * 1e12), 4))
        out['results'].append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
        del model, scorer, opt, batch, params, hf
        if device.type == 'cuda': torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == '__main__': main()
