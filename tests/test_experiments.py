"""System test of the experiment runner: every synthetic-world config in examples/experiments/synthetic runs end to end
on CPU at its `quick` size and writes a paper-shaped table; a rerun through the `rcc-experiment` CLI trains nothing; a
run that lost its last cells (killed) trains exactly those again."""
import os, sys, json, shutil, subprocess, time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SYNTH = ROOT/'examples'/'experiments'/'synthetic'
CONFIGS = sorted(SYNTH.glob('*.yaml'))
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}


def cli(tmp_dir:Path)->list[str]:
    "The `rcc-experiment` console script, or (not installed) a script file that is what it runs"
    exe = shutil.which('rcc-experiment')
    if exe: return [exe]
    f = Path(tmp_dir)/'rcc_experiment_cli.py'
    f.write_text("from rcc_rank.views.experiments import rcc_experiment\nif __name__ == '__main__': rcc_experiment()\n")
    return [sys.executable, str(f)]


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    from rcc_rank.views.experiments import run_experiment
    out = tmp_path_factory.mktemp('experiments')
    t0 = time.time()
    results = {p.stem: run_experiment(p, out, quick=True, threads=1) for p in CONFIGS}
    return out, results, time.time() - t0


def _table_rows(md:str)->dict:
    "row label -> list of cell strings, from a results_table markdown"
    lines = [l for l in md.splitlines() if l.startswith('|')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    rows = {}
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip('|').split('|')]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return header, rows


def test_every_paper_config_is_shipped():
    names = {p.stem for p in CONFIGS}
    for t in [
        'table1_data',
        'table2_objectives',
        'table3_human',
        'table4_captioning',
        'table5_lfmcq',
        'table6_questions',
        'table7_vision',
        'table8_loss',
        'fig4_chain_length',
        'unconditioned',
    ]:
        assert t in names, f'missing synthetic config {t}'
    gpu = {p.stem for p in (ROOT/'examples'/'experiments'/'gpu').glob('*.yaml')}
    assert names == gpu, f'synthetic and GPU configs differ: {sorted(names ^ gpu)}'


def test_all_synthetic_configs_produce_tables(first_run):
    from rcc_rank.views.experiments import load_experiment, grid_cells
    from rcc_rank.core.basics import read_jsonl
    out, results, seconds = first_run
    print(f'first run of {len(CONFIGS)} configs: {seconds:.1f} s')
    total_cells = 0
    for p in CONFIGS:
        cfg, r = load_experiment(p, quick=True), results[p.stem]
        cells = grid_cells(cfg)
        total_cells += len(cells)
        assert r['cells'] == len(cells) and r['ran'] + r['skipped'] == len(cells)
        header, rows = _table_rows(Path(r['table_path']).read_text())
        axis = cfg.table.get('rows')
        expected = list(dict.fromkeys(str(c['axes'][axis]) for c in cells))
        assert list(rows) == expected, (p.stem, list(rows), expected)
        for label, vals in rows.items():
            for col, v in vals.items():
                x = float(v)   # every cell of the table is a number
                assert -1.0 <= x <= 1.0, (p.stem, label, col, v)
        for m in cfg.table['metrics']:
            assert any(h.endswith(m) for h in header), (p.stem, m, header)
        recs = read_jsonl(r['results_path'])
        assert len(recs) == len(cells) and all(rec['experiment'] == cfg.name for rec in recs)
        assert (Path(r['table_path']).with_suffix('.csv')).exists()
    keys = [r['key'] for r in read_jsonl(out/'cells.jsonl')]
    assert len(keys) == len(set(keys)), 'a cell was trained twice'
    assert len(keys) < total_cells, 'cells shared between tables should train once'
    # question mixtures really trained on MCQ and yes/no chains, frozen vision really froze
    t6 = {rec['run']: rec for rec in read_jsonl(results['table6_questions']['results_path'])}
    assert t6['training=MCQ/YNQ/Cap']['data'] == 'mcq+yesno+captions' and t6['training=Pretrained']['step'] == 0
    assert all(rec['step'] >= 1 for k, rec in t6.items() if k != 'training=Pretrained')


def test_explorer_reads_results(first_run):
    from rcc_rank.views.experiments import explorer
    out, results, _ = first_run
    ex = explorer(results['fig4_chain_length']['results_path'], metrics=['rank/top1'], view='chain_length')
    assert sorted(ex.plot_data['x'].unique().tolist()) == [2, 5]
    ex2 = explorer(results['table2_objectives']['results_path'], metrics=['rank/pairwise'])
    assert set(ex2.objectives) == {'pretrained', 'sft', 'dpo', 'mpo', 'rank'}


def test_rerun_via_cli_skips_finished_cells(first_run):
    out, results, _ = first_run
    before = (out/'cells.jsonl').read_text()
    t0 = time.time()
    p = subprocess.run(cli(out) + [str(SYNTH), '--out', str(out), '--quick', '--threads', '1'],
                       capture_output=True, text=True, env=ENV, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    print(f'rerun: {time.time() - t0:.1f} s')
    assert p.stdout.count(': 0 cells run,') == len(CONFIGS), p.stdout[-2000:]
    assert (out/'cells.jsonl').read_text() == before


def test_killed_run_retrains_only_lost_cells(first_run):
    from rcc_rank.views.experiments import run_experiment, load_experiment, grid_cells
    out, results, _ = first_run
    cfg = load_experiment(SYNTH/'table7_vision.yaml', quick=True)
    keys = {c['key'] for c in grid_cells(cfg)}
    lines = (out/'cells.jsonl').read_text().splitlines()
    lost = [l for l in lines if json.loads(l)['key'] in keys][-2:]
    kept = [l for l in lines if l not in lost]
    (out/'cells.jsonl').write_text('\n'.join(kept) + '\n' + lost[0][:40])   # a killed writer leaves a partial line
    r = run_experiment(SYNTH/'table7_vision.yaml', out, quick=True, threads=1)
    assert (r['ran'], r['skipped']) == (2, len(keys) - 2)
    _, rows = _table_rows(Path(r['table_path']).read_text())
    assert list(rows) == ['sft', 'dpo', 'rank']


def test_bad_config_names_the_problem(tmp_path):
    from rcc_rank.views.experiments import load_experiment
    bad = tmp_path/'bad.yaml'
    bad.write_text(yaml.safe_dump({'name': 'x', 'grid': {'objective': ['rank']}, 'table': {'rows': 'model'}}))
    with pytest.raises(ValueError, match="table rows 'model' is not a grid axis"): load_experiment(bad)
    p = subprocess.run(
        cli(tmp_path) + [str(tmp_path / 'missing.yaml')], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert p.returncode != 0 and 'not found' in p.stderr
