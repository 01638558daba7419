#!/usr/bin/env python3
"""Benchmark chain scoring: K full sequences (`shared_prefix=False`) vs the video prefix once (`shared_prefix=True`).

    python bench/scoring.py --arch qwen2_5_vl --tiny            # CPU, under a minute on 2 cores
    python bench/scoring.py --arch qwen2_5_vl --device cuda     # full-size random-weight Qwen2.5-VL-3B config, bf16

For each K it times forward+backward of `sum(logps)` through both paths (median of `--repeats` after a warm-up run;
with --tiny one timed run and a single warm-up, to stay under a minute on 2 cores),
measures peak memory (CUDA: `max_memory_allocated`; CPU: peak resident set size above the pre-call level, sampled),
and prints one JSON object: {"arch", "device", "prefix_tokens", "caption_tokens", "results": [{K, naive_s, shared_s,
speedup, ideal_speedup, naive_peak_mb, shared_peak_mb, max_abs_diff}, ...]} (times and memory per chain).

With several variants (`--shared packed split`) each result instead holds plain_s and plain_peak_mb, and for each variant
V: V_s, V_speedup (plain_s / V_s), V_peak_mb and V_max_abs_diff; the object adds "repeats", "variants" and "load_avg".

    python bench/scoring.py --arch qwen2_5_vl --tiny --shared packed split --repeats 3   # the split path's CPU numbers
"""
import argparse, json, os, sys, threading, time, statistics

# CPU peak memory is read from the resident set size; make glibc hand big blocks straight back to the OS so it tracks
# tensor allocations (re-exec once with the allocator settings in the environment).
if 'MALLOC_MMAP_THRESHOLD_' not in os.environ and '--no-reexec' not in sys.argv:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0', HF_HUB_OFFLINE='1')
    os.execve(sys.executable, [sys.executable, *sys.argv, '--no-reexec'], env)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import numpy as np
import torch
from rcc_rank.data.chains import Chain
from rcc_rank.modeling.models import tiny_model, tiny_tokenizer, caption_prompt
from rcc_rank.modeling.family import FAMILIES
from rcc_rank.modeling.scoring import ChainCollator, chain_logps, ideal_speedup

QWEN_3B = dict(  # Qwen2.5-VL-3B-Instruct config.json dimensions
    text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
              vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=128000),
    vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
                tokens_per_second=2))

def full_size_qwen(device, dtype, image_size, frames):
    "Random-weight Qwen2.5-VL-3B-sized model (tiny tokenizer; ids fit the real vocabulary size) and a matching processor"
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    _, proc = tiny_model('qwen2_5_vl', image_size=image_size, frames=frames, hidden=32, layers=1, heads=2, kv_heads=1,
                         vision_hidden=16, vision_depth=1)
    V = proc.tokenizer.get_vocab()
    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            QWEN_3B['text'],
            tie_word_embeddings=True,
            rope_scaling={'type': 'mrope', 'mrope_section': [16, 24, 24]},
            bos_token_id=V['<|endoftext|>'],
            eos_token_id=V['<|im_end|>'],
            pad_token_id=V['<|endoftext|>'],
        ),
        vision_config=QWEN_3B['vision'],
        image_token_id=V['<|image_pad|>'],
        video_token_id=V['<|video_pad|>'],
        vision_start_token_id=V['<|vision_start|>'],
        vision_end_token_id=V['<|vision_end|>'],
        tie_word_embeddings=True,
    )
    cfg._attn_implementation = 'sdpa'
    torch.manual_seed(0)
    with torch.device(device):
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try: model = Qwen2_5_VLForConditionalGeneration(cfg)
        finally: torch.set_default_dtype(prev)
    return model, proc

class PeakRSS:
    "Peak resident memory (MB) above the level at entry, sampled every ~0.2 ms from /proc/self/statm"
    def __enter__(self):
        self.page = os.sysconf('SC_PAGE_SIZE')
        self.base = self.peak = self._rss()
        self._stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self
    def _rss(self):
        with open('/proc/self/statm') as f: return int(f.read().split()[1]) * self.page
    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.0002)
    def __exit__(self, *a):
        self._stop = True
        self.t.join()
        self.peak = max(self.peak, self._rss())
    @property
    def mb(self): return (self.peak - self.base) / 2**20

def step(model, batch, shared):
    model.zero_grad(set_to_none=True)
    s = chain_logps(model, batch, shared_prefix=shared)
    s.logps.sum().backward()
    return s.logps.detach().float()

def measure(model, batch, shared, repeats, device, warmup=True):
    "Median forward+backward seconds over `repeats` runs (after a warm-up run), peak memory (MB) over them, and the log-probs"
    if warmup: step(model, batch, shared)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    model.zero_grad(set_to_none=True)
    if device.type == 'cuda':
        sync()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    with PeakRSS() as m:
        for _ in range(repeats):
            sync()
            t = time.perf_counter()
            lp = step(model, batch, shared)
            sync()
            times.append(time.perf_counter() - t)
            model.zero_grad(set_to_none=True)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == 'cuda' else m.mb
    return statistics.median(times), peak, lp

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--arch',
        default='qwen2_5_vl',
        help="model family (transformers' model_type, see rcc_rank.modeling.family.FAMILIES)",
    )
    p.add_argument(
        '--tiny',
        action='store_true',
        help='tiny random model (CPU-sized); default is the full-size 3B config (Qwen only)',
    )
    p.add_argument('--device', default=None, help="'cpu' or 'cuda' (default: cuda if available)")
    p.add_argument(
        '--dtype', default=None, help="float32 or bfloat16 (default: float32 for --tiny, bfloat16 otherwise)"
    )
    p.add_argument('--ks', type=int, nargs='+', default=[2, 4, 6, 8])
    p.add_argument(
        '--frames', type=int, default=30, help='video frames (30 frames of 224x224 give ~960 Qwen video tokens)'
    )
    p.add_argument('--image-size', type=int, default=224)
    p.add_argument('--caption-tokens', type=int, default=150)
    p.add_argument('--chains', type=int, default=1, help='chains per batch (results are per chain)')
    p.add_argument('--repeats', type=int, default=None, help='timed runs per point (default 1 for --tiny, 5 otherwise)')
    p.add_argument('--hidden', type=int, default=64, help='--tiny: text hidden size')
    p.add_argument('--layers', type=int, default=2, help='--tiny: text layers')
    p.add_argument('--vision-depth', type=int, default=1, help='--tiny: vision blocks')
    p.add_argument(
        '--shared',
        default=['packed'],
        nargs='+',
        choices=['packed', 'split', 'cache'],
        help='which shared-prefix variant(s) to time',
    )
    p.add_argument('--no-reexec', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args()
    device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    dtype = getattr(torch, a.dtype or ('float32' if a.tiny else 'bfloat16'))
    repeats = a.repeats or (1 if a.tiny else 5)
    torch.manual_seed(0)
    if a.tiny:
        kw = dict(
            image_size=a.image_size, frames=a.frames, hidden=a.hidden, layers=a.layers, vision_depth=a.vision_depth
        )
        if a.arch == 'perception_lm': kw.update(patch_size=16)
        model, proc = tiny_model(a.arch, **kw)
        model = model.to(device=device, dtype=dtype)
    else:
        if a.arch == 'qwen2_5_vl':
            model, proc = full_size_qwen(device, dtype, a.image_size, a.frames)
        else:  # other families: random weights of the family at --hidden x --layers (a stand-in for the released sizes)
            model, proc = tiny_model(
                a.arch,
                image_size=a.image_size,
                frames=a.frames,
                hidden=a.hidden,
                layers=a.layers,
                heads=16,
                kv_heads=8,
                vision_hidden=1024,
                vision_depth=a.vision_depth,
            )
            model = model.to(device=device, dtype=dtype)
    model.train()
    rng = np.random.default_rng(0)
    words = ' '.join(
        ['A red ball rolls from the left to the right across a wooden table while a blue cube stays still.'] * 40
    )
    frames = rng.integers(0, 256, (a.frames, a.image_size, a.image_size, 3), dtype=np.uint8)
    results, prefix_tokens = [], None
    for K in a.ks:
        chains = [Chain(f'c{i}', [words] * K, meta={'frames': frames}) for i in range(a.chains)]
        batch = ChainCollator(proc, num_frames=a.frames, max_caption_tokens=a.caption_tokens)(chains)
        for k in ('pixel_values_videos',): batch[k] = batch[k].to(dtype)
        prefix_tokens = int(batch['attention_mask'][0].sum())
        warm = not a.tiny or K == a.ks[0]          # on CPU one warm-up is enough; each costs as much as a timed run
        n_s, n_m, n_lp = measure(model, batch, False, repeats, device, warm)
        ideal = round(ideal_speedup(prefix_tokens, a.caption_tokens, K), 3)
        if len(a.shared) == 1:
            s_s, s_m, s_lp = measure(model, batch, a.shared[0], repeats, device, warm)
            results.append(
                dict(
                    K=K,
                    naive_s=round(n_s / a.chains, 4),
                    shared_s=round(s_s / a.chains, 4),
                    speedup=round(n_s / s_s, 3),
                    ideal_speedup=ideal,
                    naive_peak_mb=round(n_m / a.chains, 1),
                    shared_peak_mb=round(s_m / a.chains, 1),
                    max_abs_diff=float(f'{(n_lp - s_lp).abs().max().item():.3g}'),
                )
            )
        else:
            r = dict(K=K, ideal_speedup=ideal, plain_s=round(n_s / a.chains, 4), plain_peak_mb=round(n_m / a.chains, 1))
            for v in a.shared:
                s_s, s_m, s_lp = measure(model, batch, v, repeats, device, warm)
                r.update(
                    {
                        f'{v}_s': round(s_s / a.chains, 4),
                        f'{v}_speedup': round(n_s / s_s, 3),
                        f'{v}_peak_mb': round(s_m / a.chains, 1),
                        f'{v}_max_abs_diff': float(f'{(n_lp - s_lp).abs().max().item():.3g}'),
                    }
                )
            results.append(r)
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    dev = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
    out = {
        'arch': a.arch,
        'device': dev,
        'prefix_tokens': prefix_tokens,
        'caption_tokens': a.caption_tokens,
        'results': results,
    }
    if len(a.shared) > 1:
        out.update(repeats=repeats, variants=a.shared, load_avg=[round(x, 2) for x in os.getloadavg()])
    print(json.dumps(out))

if __name__ == '__main__': main()
