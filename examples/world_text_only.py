"""Text-only control for the synthetic world: the demo's tiny Qwen2.5-VL, pretrained (SFT) and then trained with one
of the demo's arms on world chains whose frames are blank, scored on held-out chains (also blank). If the captions
carried tells a model could learn without looking, this model would rank above chance. Prints one JSON object:
pairwise accuracy and top-1 with 95% bootstrap intervals over held-out chains, summed and length-normalised, beside
chance; and the held-out pairwise accuracy of a second text-only model, a logistic regression on the captions' word
n-grams (`ngram_probe`).

Chance for pairwise accuracy is 0.5. Chance for top-1 is *not* 1/K here: edits accumulate along a chain, so
the scores of an order-blind model drift like a random walk from caption 0 to caption K-1 and its maximum
falls at one of the two ends more often than 1/K. The order-blind reference is therefore `top1_worst`, how
often the *worst* caption scores highest (equal to top-1 in expectation when the scores carry no order);
`top1_minus_worst` is their paired difference.

    python examples/world_text_only.py --out /tmp/text_only --steps 300
    python examples/world_text_only.py --out /tmp/t --n_pretrain 32 --pretrain_steps 4 --steps 4 --n_test 16  # seconds
    python examples/world_text_only.py --out /tmp/text_only --summarise_only   # re-read per_chain.json
"""
import argparse, json, os, time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from rcc_rank.recipes.demo import pretrain, arm_config
from rcc_rank.recipes.demo_setup import DemoConfig, demo_data, blank_video, setup_torch
from rcc_rank.training.train import train
from rcc_rank.evaluation.evaluate import rank_chains
from rcc_rank.objectives.metrics import chain_metrics


def interval(x, seed=0):
    "Mean and 95% bootstrap interval of per-chain values"
    x = np.asarray(x, float)
    ci = stats.bootstrap((x,), np.mean, confidence_level=0.95, n_resamples=2000, random_state=seed).confidence_interval
    return {'mean': float(x.mean()), 'low': float(ci.low), 'high': float(ci.high)}


def summarise(per_chain):
    "Pairwise and top-1 (summed and length-normalised) with bootstrap intervals, and the order-blind references"
    per = [chain_metrics(p['logps']) for p in per_chain]
    norm = [chain_metrics(np.array(p['logps']) / np.array(p['ntokens'])) for p in per_chain]
    worst = [chain_metrics(p['logps'][::-1])['top1'] for p in per_chain]   # the worst caption scores highest
    top1 = [m['top1'] for m in per]
    return {
        'chance': {'pairwise': 0.5, 'top1_if_exchangeable': float(np.mean([1 / len(p['logps']) for p in per_chain]))},
        'pairwise': interval([m['pairwise'] for m in per]),
        'pairwise_norm': interval([m['pairwise'] for m in norm]),
        'top1': interval(top1),
        'top1_worst': interval(worst),
        'top1_minus_worst': interval(np.subtract(top1, worst)),
        'top1_norm': interval([m['top1'] for m in norm]),
        'n_chains': len(per_chain),
    }


def ngram_features(text, dim=1 << 12):
    "Hashed counts of the caption's word 1-, 2- and 3-grams (a text-only bag-of-n-grams)"
    import zlib
    w = text.lower().replace(',', ' ,').replace('.', ' .').split()
    v = np.zeros(dim, np.float32)
    for n in (1, 2, 3):
        for i in range(len(w) - n + 1): v[zlib.crc32(' '.join(w[i:i + n]).encode()) % dim] += 1
    return v


def ngram_probe(train_c, test_c, epochs=200, seed=0):
    "A second text-only model: logistic regression on n-gram differences of caption pairs; held-out pairwise accuracy"
    torch.manual_seed(seed)
    def pairs(chains):
        X, who = [], []
        for b, c in enumerate(chains):
            F = np.stack([ngram_features(x) for x in c.captions])
            for i in range(len(F)):
                for j in range(i + 1, len(F)):
                    X.append(F[i] - F[j])
                    who.append(b)
        return torch.tensor(np.stack(X)), np.array(who)
    X, _ = pairs(train_c)
    X = torch.cat([X, -X])
    y = torch.cat([torch.ones(len(X) // 2), torch.zeros(len(X) // 2)])
    w = torch.zeros(X.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 1e-3 * (w ** 2).sum()
        loss.backward()
        opt.step()
    Xt, who = pairs(test_c)
    with torch.no_grad(): s = (Xt @ w).numpy()
    right = (s > 0) + 0.5 * (s == 0)
    per_chain = [float(right[who == b].mean()) for b in np.unique(who)]
    return {'pairwise': interval(per_chain), 'train_pairs': len(X) // 2, 'final_loss': float(loss.detach())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='text_only')
    ap.add_argument('--n_pretrain', type=int, default=768)
    ap.add_argument('--n_train', type=int, default=512)
    ap.add_argument('--n_test', type=int, default=256)
    ap.add_argument('--length', type=int, default=5)
    ap.add_argument('--pretrain_steps', type=int, default=1200)
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--objective', default='rank', help='an arm of the demo (rcc_rank.recipes.demo_setup.ARMS)')
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument(
        '--summarise_only', action='store_true', help="only re-read OUT/per_chain.json and print the summary"
    )
    ap.add_argument('--ngram_only', action='store_true', help="only fit and score the n-gram probe (seconds)")
    a = ap.parse_args()
    if a.summarise_only:
        print(json.dumps(summarise(json.loads((Path(a.out) / 'per_chain.json').read_text())), indent=1))
        return
    torch.set_num_threads(1)
    out = Path(a.out).resolve()
    os.environ['RCC_RANK_HOME'] = str(out / 'home')   # a blank-video pretraining never enters the demo's own cache
    cfg = DemoConfig(out_dir=str(out), n_pretrain=a.n_pretrain, n_train=a.n_train, n_test=a.n_test,
                     n_curve=min(a.n_test, 64), chain_length=a.length, pretrain_steps=a.pretrain_steps, steps=a.steps,
                     lr=a.lr, eval_every=max(1, a.steps // 2))
    setup_torch(cfg)
    t0 = time.time()
    data = demo_data(cfg, stages=('pretrain', 'train', 'test'))
    if a.ngram_only:
        probe = ngram_probe(data['train'], data['test'])
        print(json.dumps({'ngram_probe': probe, 'n_train': cfg.n_train, 'n_test': cfg.n_test}, indent=1))
        return
    for k in ('pretrain', 'train', 'test'): data[k] = blank_video(data[k])
    data['curve'] = data['test'][:cfg.n_curve]
    train_c, test_c = data['train'], data['test']
    base, _ = pretrain(cfg, data, say=lambda *x: None)
    res = train(arm_config(cfg, a.objective, a.seed, base, out / a.objective), train_chains=train_c,
                eval_chains=data['curve'], return_model=True)
    model, proc = res['model'], res['processor']
    r = rank_chains(model, proc, test_c, batch_size=16, num_frames=cfg.n_frames, progress=False)
    (out/'per_chain.json').write_text(json.dumps(r['per_chain']))
    print(json.dumps({
        'setting': dict(n_train=cfg.n_train, n_test=cfg.n_test, length=cfg.chain_length,
                        pretrain_steps=cfg.pretrain_steps, steps=cfg.steps, objective=a.objective, lr=a.lr,
                        frames='blank'),
        **summarise(r['per_chain']), 'ngram_probe': ngram_probe(train_c, test_c),
        'by_error_type': r.get('by_error_type'), 'n_by_error_type': r.get('n_by_error_type'),
        'train_final': {k: v for k, v in (res.get('train') or {}).items() if isinstance(v, (int, float))},
        'seconds': round(time.time() - t0, 1)}, indent=1))


if __name__ == '__main__':
    main()
