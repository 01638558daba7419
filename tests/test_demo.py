"System test of `rcc-demo --quick`: the console entry point runs end to end in a subprocess and writes a report that parses."
import csv, json, os, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_rcc_demo_quick(tmp_path):
    out = tmp_path/'demo'
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg', 'RCC_RANK_HOME': str(tmp_path/'home'),
           'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    # `rcc-demo` is the console script `rcc_rank.demo:rcc_demo`; run it installed if it is, else through the same
    # wrapper pip generates for console scripts
    exe = shutil.which('rcc-demo')
    if exe: cmd = [exe]
    else:
        script = tmp_path/'rcc-demo'
        script.write_text("import re, sys\nfrom rcc_rank.demo import rcc_demo\nif __name__ == '__main__':\n"
                          "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(rcc_demo())\n")
        cmd = [sys.executable, str(script)]
    cmd += ['--quick', '--out', str(out)]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert '[rcc-demo' in p.stdout and 'done in' in p.stdout          # progress lines were shown
    for f in ('report.md', 'results.csv', 'results.json', 'config.json', 'metrics_by_objective.png', 'learning_curves.png',
              'data/train.jsonl', 'data/test.jsonl', 'data/lf_mcq.jsonl'):
        assert (out/f).is_file() and (out/f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out/'results.csv')))
    assert {'sft', 'dpo', 'mpo', 'rank', 'rank_frozen_vision'} <= {r['arm'] for r in rows}
    assert any(r['arm'] == 'pretrained' for r in rows)
    for r in rows:
        for k in ('pairwise', 'top1', 'pairwise_blank', 'mcq'):
            assert 0.0 <= float(r[k]) <= 1.0, (r['arm'], k, r[k])
    res = json.loads((out/'results.json').read_text())
    assert res['config']['seeds'] == [0] and len(res['rows']) == 5
    assert res['timings']['total'] > 0 and res['timings']['cpu'] > 0
    assert {'pairwise', 'pairwise_blank', 'top1'} <= set(res['warm'])
    assert {'chance', 'length', 'best_single_type_oracle'} <= set(res['baselines'])
    assert all({'a', 'b', 'metric', 'mean', 'low', 'high', 'n'} <= set(d) for d in res['paired'])
    assert {(d['a'], d['b']) for d in res['paired']} >= {('rank', 'dpo'), ('rank', 'pretrained')}
    assert [c['step'] for c in res['rows'][0]['curve']] == [0, 1, 2]    # learning curves
    md = (out/'report.md').read_text()
    assert '| rank |' in md and 'rank − rank_frozen_vision' in md and '## Controls' in md
    assert any(p.name.startswith('pretrain-') for p in (tmp_path/'home'/'demo').iterdir())   # the cached checkpoint
    assert (out/'metrics_by_objective.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # no pixels were written into the chain files
    first = json.loads((out/'data/train.jsonl').open().readline())
    assert 'frames' not in first['meta'] and 'scene' in first['meta']
