"""The experiment runner's judged evaluations: a synthetic-world config with `judge` and `vdc` evaluations runs end to
end with the offline judge and writes a paper-shaped table with those columns; under `accelerate launch` on two CPU
processes the evaluation is sharded, only the main process writes `cells.jsonl`, and the table equals a one-process
run."""
import json, subprocess
from pathlib import Path

import yaml

from conftest import ENV, LAUNCH_TWO

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT/'examples'/'experiments'/'judged'/'table4_captioning_judged.yaml'


def _env():
    return {k: v for k, v in ENV.items() if k != 'ANTHROPIC_API_KEY'}


def _rows(md):
    lines = [l for l in md.splitlines() if l.startswith('|')]
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    return head, {c[0]: c[1:] for c in ([x.strip() for x in l.strip('|').split('|')] for l in lines[2:])}


def test_judged_synthetic_config_writes_paper_table(tmp_path):
    from rcc_rank.views.experiments import run_experiment, load_experiment
    r = run_experiment(CONFIG, tmp_path/'exp', quick=True, threads=1)
    head, rows = _rows(Path(r['table_path']).read_text())
    cfg = load_experiment(CONFIG, quick=True)
    assert head[1:] == cfg.table['metrics'] and list(rows) == ['pretrained', 'rank']
    for vals in rows.values():
        x = dict(zip(head[1:], map(float, vals)))
        assert all(1 <= x[k] <= 10 for k in head[1:] if k.startswith('judge/'))
        assert 0 <= x['vdc/score'] <= 5 and 0 <= x['vdc/acc'] <= 1
    rec = json.loads((tmp_path/'exp'/'cells.jsonl').read_text().splitlines()[0])
    assert {'judge/relevance', 'judge/mean', 'vdc/detailed/score', 'rank/top1'} <= set(rec)


def test_two_processes_give_the_same_table(tmp_path):
    from rcc_rank.views.experiments import run_experiment
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg.update(name='judged_dp', grid={'objective': ['pretrained']}, data={**cfg['data'], 'n_test': 3})
    cfg['table']['rows'] = 'objective'
    (tmp_path/'dp.yaml').write_text(yaml.safe_dump(cfg))
    one = run_experiment(tmp_path/'dp.yaml', tmp_path/'one', quick=True, threads=1)
    cmd = [
        *LAUNCH_TWO,
        '-m',
        'rcc_rank.views.experiments',
        str(tmp_path / 'dp.yaml'),
        '--out',
        str(tmp_path / 'two'),
        '--quick',
        '--threads',
        '1',
    ]
    p = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=500)
    assert p.returncode == 0, p.stderr[-3000:]
    two = (tmp_path/'two'/'judged_dp.md').read_text()
    assert _rows(two) == _rows(Path(one['table_path']).read_text())
    assert len((tmp_path/'two'/'cells.jsonl').read_text().splitlines()) == 1   # one writer
