"""Arm step time of `rcc-demo` with and without `precompute_ref_logps` and `cache_batches` (CPU).

    python bench/demo_step.py [--steps 12] [--repeats 3] [--objectives rank,dpo]

Builds the demo's tiny Qwen2.5-VL (text 128 x 2, vision 64 x 2, random weights: the step cost does not depend on
them) and its world chains (4 frames of 56x56, chains of 3), trains LoRA arms for a few steps in each of the four
settings, and prints one JSON object: per setting the median over repeats of each run's median CPU and wall seconds
per optimizer step (the first epoch excluded: it fills the cache), the one-off reference precomputation, and the load average before and
after, so numbers taken on a busy machine can be recognised. Every run of one repeat is made back to back, so the
ratios within a repeat are the comparable numbers.
"""
import os, json, argparse, tempfile, logging, statistics
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
import torch

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--objectives', default='rank,dpo')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.getLogger('rcc_rank').setLevel(logging.WARNING)
    from rcc_rank.recipes.demo_setup import DemoConfig, demo_model, demo_data
    from rcc_rank.modeling.models import save_model
    from rcc_rank.training.train import TrainConfig, train

    cfg = DemoConfig(
        n_train=16, n_test=8, n_mcq=1
    )  # 2 steps an epoch: after the first epoch every batch comes from the cache
    data = demo_data(cfg)
    tmp = Path(tempfile.mkdtemp())
    model, proc = demo_model(cfg)
    save_model(model, proc, tmp / 'base')
    del model
    settings = {'online': {}, 'precompute_ref_logps': dict(precompute_ref_logps=True), 'cache_batches': dict(cache_batches=True),
                'both': dict(precompute_ref_logps=True, cache_batches=True)}
    load0, runs = os.getloadavg(), {}
    for rep in range(a.repeats):
        for obj in a.objectives.split(','):
            for name, kw in settings.items():
                r = train(
                    TrainConfig(
                        model=str(tmp / 'base'),
                        arch='qwen2_5_vl',
                        objective=obj,
                        num_frames=cfg.n_frames,
                        batch_size=cfg.batch_size,
                        max_steps=a.steps,
                        warmup_steps=1,
                        lr=1e-3,
                        lora_r=16,
                        lora_alpha=32,
                        beta=1.0,
                        cpu=True,
                        mixed_precision='no',
                        log_with='none',
                        eval_every=0,
                        save_every=0,
                        output_dir=str(tmp / f'{obj}-{name}-{rep}'),
                        **kw,
                    ),
                    train_chains=data['train'],
                )
                d = runs.setdefault(f'{obj}/{name}', dict(cpu=[], wall=[], ref=[]))
                d['cpu'].append(statistics.median(r['step_cpu_s'][2:]))
                d['wall'].append(statistics.median(r['step_times'][2:]))
                d['ref'].append(r['ref_precompute_s'])
    med = lambda v: round(statistics.median(v), 4)
    out = {
        k: dict(step_cpu_s=med(v['cpu']), step_wall_s=med(v['wall']), ref_precompute_s=med(v['ref']), n=len(v['cpu']))
        for k, v in runs.items()
    }
    for obj in a.objectives.split(','):
        base = out[f'{obj}/online']['step_cpu_s']
        for name in settings: out[f'{obj}/{name}']['speedup_cpu'] = round(base / out[f'{obj}/{name}']['step_cpu_s'], 2)
    print(
        json.dumps(
            dict(
                steps=a.steps,
                repeats=a.repeats,
                threads=a.threads,
                load_before=load0,
                load_after=os.getloadavg(),
                cores=os.cpu_count(),
                results=out,
            ),
            indent=1,
        )
    )

if __name__ == '__main__': main()
