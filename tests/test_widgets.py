"""The widgets driven headless the way a person uses them, on inputs the notebook does not cover: chains from
a JSONL file scored by a real (tiny, random) model through `(model, processor)`, and ablation results
from the CSV that `rcc_rank.evaluation.evaluate.results_table` writes."""
import numpy as np
import pytest

from rcc_rank.data.chains import Chain, Mutation, write_chains
from rcc_rank.views.widgets import ChainViewer, caption_ranks
from rcc_rank.views.ablation import AblationExplorer

def _chains():
    a = Chain('a', ['A red square slides left.', 'A blue square slides left.', 'A blue square slides right.'],
              [Mutation('colour', 'red', 'blue'), Mutation('direction', 'left', 'right')])
    b = Chain('b', ['Two cats sleep on a mat.', 'Three cats sleep on a mat.'], [Mutation('count', 'Two', 'Three')])
    return [a, b]

def test_chain_viewer_scores_with_a_model(tmp_path):
    from rcc_rank.modeling.models import tiny_model
    write_chains(_chains(), tmp_path/'chains.jsonl')
    rng = np.random.default_rng(0)
    frames = {'a': rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
              'b': rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)}
    model, proc = tiny_model(seed=0)
    v = ChainViewer(tmp_path/'chains.jsonl', frames=frames, model=(model, proc), num_frames=4)
    s = v.scores_for(v.chain)
    assert s.shape == (3,) and np.isfinite(s).all() and (s < 0).all()
    ranks = caption_ranks(s)
    assert sorted(ranks) == [1, 2, 3]
    v.step = 2
    for lp, r in zip(s, ranks): assert f'<td>{lp:.2f}</td><td>{r}</td>' in v.html
    assert 'rcc-current' in v.html and 'class="rcc-frames"' in v.html
    v.select('b')  # scored when first shown, then cached
    assert v.scores_for(v.chain).shape == (2,) and set(v._scores) == {'a', 'b'}

def test_ablation_explorer_reads_results_table_csv(tmp_path):
    from rcc_rank.evaluation.evaluate import results_table
    rows = [dict(run=f'{o}-s{s}', objective=o, freeze_vision=False, chain_length=4, step=step,
                 top1=0.4 + 0.1*i + 0.01*step/100, kendall_tau=0.2 + 0.05*i)
            for i, o in enumerate(['dpo', 'rank']) for s in (0, 1) for step in (0, 100)]
    results_table(rows, path=tmp_path/'results')
    ex = AblationExplorer(tmp_path/'results.csv')
    assert ex.metrics == ['top1', 'kendall_tau'] and len(ex.runs) == 4
    bars = ex.figure.axes[0].patches
    assert [round(b.get_height(), 4) for b in bars] == [0.41, 0.51]  # mean over seeds at the last step
    ex.view = 'step'
    assert len(ex.figure.axes[0].lines) == 4
    out = ex.export(tmp_path/'fig.pdf')
    assert out.read_bytes()[:4] == b'%PDF'
    with pytest.raises(ValueError, match="runs: unknown"): ex.runs = ['nope']
