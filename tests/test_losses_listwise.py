"""The listwise objectives against independent references, in float64:

- `pl_topk_loss` is minus the log of the Plackett-Luce probability that an ordering starts with the chain's top k,
  summed by brute force over all permutations; k = K-1 is `plackett_luce_loss` bit for bit;
- `listnet_loss` is the cross-entropy of softmax(labels / T) and softmax(rewards), written out in plain Python;
- `lipo_loss` weights each pair by the DCG change of swapping the two captions in the current reward ranking;
- every gradient passes `torch.autograd.gradcheck`, with and without padding; each is reachable by name in
  `chain_objective` with its setting.
"""
import itertools, math

import pytest, torch

from rcc_rank.objectives.losses import (OBJECTIVES, chain_objective, dpo_rewards, lipo_loss, listnet_loss, pl_topk_loss,
                             plackett_luce_loss)


def _pl_prob(r, order):
    p, rest = 1.0, list(order)
    for i in order:
        p *= math.exp(r[i]) / sum(math.exp(r[j]) for j in rest)
        rest.remove(i)
    return p


def _pl_topk_ref(r, k):
    return -math.log(sum(_pl_prob(r, t) for t in itertools.permutations(range(len(r))) if t[:k] == tuple(range(k))))


def _listnet_ref(r, T):
    n = len(r)
    zp, zq = sum(math.exp((n - 1 - k) / T) for k in range(n)), sum(math.exp(v) for v in r)
    return -sum(math.exp((n - 1 - k) / T) / zp * (r[k] - math.log(zq)) for k in range(n))


def _dcg(gains, order): return sum(gains[c] / math.log2(2 + pos) for pos, c in enumerate(order))


def _lipo_ref(r, base):
    n = len(r)
    gains, order = [base ** (n - 1 - k) - 1 for k in range(n)], sorted(range(n), key=lambda c: -r[c])
    out = 0.0
    for i, j in itertools.combinations(range(n), 2):
        w = abs(_dcg(gains, order) - _dcg(gains, [j if c == i else i if c == j else c for c in order]))
        out += w * math.log1p(math.exp(-(r[i] - r[j])))
    return out


@pytest.fixture
def chains():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(4, 6, dtype=torch.float64, generator=g) * 8 - 40
    r = torch.randn(4, 6, dtype=torch.float64, generator=g) * 8 - 40
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4, [True] * 5 + [False]])
    return p, r, mask


def _per_chain(fn, p, r, mask, beta=0.3):
    "Apply a reference to each chain's present rewards"
    s = dpo_rewards(p, r, beta)
    return torch.tensor([fn(s[b][mask[b]].tolist()) for b in range(len(s))], dtype=torch.float64)


@pytest.mark.parametrize('k', [1, 2, 3, 5])
def test_pl_topk_matches_brute_force(chains, k):
    p, r, mask = chains
    ref = _per_chain(lambda s: _pl_topk_ref(s, min(k, len(s))), p, r, mask)
    assert torch.allclose(pl_topk_loss(p, r, 0.3, mask, k=k), ref, rtol=0, atol=1e-6)


def test_pl_topk_k_last_is_rank(chains):
    p, r, mask = chains
    assert torch.equal(pl_topk_loss(p, r, 0.3, mask, k=5), plackett_luce_loss(p, r, 0.3, mask))
    assert torch.equal(pl_topk_loss(p, r, 0.3, k=5), plackett_luce_loss(p, r, 0.3))


@pytest.mark.parametrize('T', [0.25, 1.0, 4.0])
def test_listnet_matches_reference(chains, T):
    p, r, mask = chains
    assert torch.allclose(
        listnet_loss(p, r, 0.3, mask, T), _per_chain(lambda s: _listnet_ref(s, T), p, r, mask), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize('base', [2.0, 3.0])
def test_lipo_matches_reference(chains, base):
    p, r, mask = chains
    assert torch.allclose(
        lipo_loss(p, r, 0.3, mask, base), _per_chain(lambda s: _lipo_ref(s, base), p, r, mask), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize('name', ['lipo', 'listnet', 'pl_topk'])
def test_gradcheck(chains, name):
    p, r, mask = chains
    p, r = p.clone().requires_grad_(True), r.clone().requires_grad_(True)
    fn = dict(lipo=lambda p, r, m: lipo_loss(p, r, 0.3, m), listnet=lambda p, r, m: listnet_loss(p, r, 0.3, m, 0.7),
              pl_topk=lambda p, r, m: pl_topk_loss(p, r, 0.3, m, k=2))[name]
    assert torch.autograd.gradcheck(lambda p, r: fn(p, r, mask), (p, r))
    assert torch.autograd.gradcheck(lambda p, r: fn(p, r, None), (p, r))


def test_chain_objective_names_and_settings(chains):
    p, r, mask = chains
    assert {'lipo', 'listnet', 'pl_topk'} <= set(OBJECTIVES)
    ntp = torch.full((4,), 2.0, dtype=torch.float64)
    got = {
        n: chain_objective(n, p, r, ntp, beta=0.3, mask=mask, pl_topk_k=3, listnet_temperature=0.5, lipo_gain_base=3.0)[
            0
        ]
        for n in ('lipo', 'listnet', 'pl_topk')
    }
    assert torch.allclose(got['lipo'], lipo_loss(p, r, 0.3, mask, 3.0) + 0.2)
    assert torch.allclose(got['listnet'], listnet_loss(p, r, 0.3, mask, 0.5) + 0.2)
    assert torch.allclose(got['pl_topk'], pl_topk_loss(p, r, 0.3, mask, k=3) + 0.2)
    with pytest.raises(ValueError, match='needs ref_logps'): chain_objective('listnet', p, None, ntp)
    with pytest.raises(ValueError, match='temperature must be > 0'): listnet_loss(p, r, temperature=0.)


def test_experiment_config_and_demo_arms():
    "The listwise comparison loads with the experiment loader (both sizes) and the demo accepts the new arms"
    from pathlib import Path
    from rcc_rank.views.experiments import load_experiment, grid_cells
    from rcc_rank.recipes.demo_setup import ARMS, DemoConfig
    from rcc_rank.training.config import TrainConfig
    root = Path(__file__).resolve().parents[1]/'examples'/'experiments'
    for sub in ('synthetic', 'gpu'):
        cfg = load_experiment(root/sub/'listwise_objectives.yaml')
        objs = {c['axes']['objective'] for c in grid_cells(cfg)}
        assert {'rank', 'lipo', 'listnet', 'dpo'} <= objs, (sub, objs)
        assert all(TrainConfig(**{**cfg.base, 'objective': o}).objective == o for o in objs)
    cfg = DemoConfig(arms=('lipo', 'listnet', 'pl_topk'))
    assert all(TrainConfig(**ARMS[a]).objective == a for a in cfg.arms)
    assert 'lipo' not in DemoConfig().arms                  # the default demo keeps the paper's arms
