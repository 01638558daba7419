"""Step time of `rcc_rank.training.train` with the tiny random-weight models (CPU by default).

    python bench/train_step.py [--steps 8] [--threads 1] [--archs qwen2_5_vl,perception_lm] [--objectives rank,dpo,sft]

Trains each (arch, objective, shared_prefix) setting for a few steps on rule-made 4-caption chains
with 8-frame 32x32 videos, batch 4, and prints one JSON object: the median seconds per optimizer
step (first step excluded), the peak GPU memory when run on a GPU, and the machine's load average
so that numbers taken on a busy machine can be recognised.
"""
import os, json, time, argparse, tempfile, logging, statistics
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import torch

CAPTIONS = ["A man in a red shirt throws two yellow balls to a small brown dog on the green grass.",
            "Three children in blue coats walk slowly past a large white car on a wet street.",
            "A woman with a black hat pours hot coffee into a white cup, then she sits on a wooden chair.",
            "Two girls in green dresses ride red bicycles quickly down a long hill near a small house."]

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=8)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--archs', default='qwen2_5_vl,perception_lm')
    ap.add_argument('--objectives', default='rank,dpo,sft')
    ap.add_argument('--cpu', action='store_true', help='stay on the CPU even if a GPU is present')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from rcc_rank.data.mutators import RuleMutator
    from rcc_rank.data.builder import build_chains
    from rcc_rank.testing.fixtures import write_test_video
    from rcc_rank.training.train import TrainConfig, train
    logging.getLogger('rcc_rank').setLevel(logging.WARNING)
    d = Path(tempfile.mkdtemp())
    items = [
        dict(id=f'v{i}', caption=c, video=str(write_test_video(d / f'v{i}.mp4', n=16, size=(32, 32))))
        for i, c in enumerate(CAPTIONS)
    ]
    build_chains(items, RuleMutator(), length=4, seed=0, out_path=d/'chains.jsonl')
    gpu = torch.cuda.is_available() and not a.cpu
    out = dict(
        load_avg_before=os.getloadavg(),
        threads=a.threads,
        device='cuda' if gpu else 'cpu',
        batch_size=4,
        chain_length=4,
        num_frames=8,
        results=[],
    )
    for arch in a.archs.split(','):
        for obj in a.objectives.split(','):
            for sp in (True, False):
                if gpu: torch.cuda.reset_peak_memory_stats()
                cfg = TrainConfig(
                    model=f'tiny:{arch}',
                    train_data=str(d / 'chains.jsonl'),
                    cpu=not gpu,
                    objective=obj,
                    shared_prefix=sp,
                    num_frames=8,
                    batch_size=4,
                    max_steps=a.steps,
                    log_every=1,
                    eval_every=0,
                    save_every=0,
                    log_with='none',
                    output_dir=str(d / f'{arch}_{obj}_{sp}'),
                )
                t = time.perf_counter()
                r = train(cfg)
                total = time.perf_counter() - t
                out['results'].append(
                    dict(
                        arch=arch,
                        objective=obj,
                        shared_prefix=sp,
                        median_step_s=round(statistics.median(r['step_times'][1:]), 4),
                        run_s=round(total, 2),
                        final_loss=round(r['train']['loss'], 4),
                        peak_gpu_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3) if gpu else None,
                    )
                )
    out['load_avg_after'] = os.getloadavg()
    print(json.dumps(out))

if __name__ == '__main__': main()
