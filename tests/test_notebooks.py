"""Every notebook top to bottom in a fresh Jupyter kernel, as JupyterLab runs it (not only nbdev_test's
cell runner): `tools/run_nb.py` per notebook, two at a time. Cells flagged `api`/`gpu`/`slow` (settings.ini
`tst_flags`) or `eval: false` are skipped exactly as nbdev_test skips them."""
import os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
TIMEOUT = 300  # seconds per notebook

def notebooks()->list[Path]:
    "nbs/**/*.ipynb (and the top-level index.ipynb, which nbs/index.ipynb links to), each file once"
    seen, out = set(), []
    for p in sorted((ROOT/'nbs').rglob('*.ipynb')) + [ROOT/'index.ipynb']:
        rel = p.relative_to(ROOT)
        if any(part.startswith(('_', '.')) for part in rel.parts) or not p.exists(): continue
        if p.resolve() in seen: continue
        seen.add(p.resolve())
        out.append(p)
    return out

NBS = notebooks()

def _run(nb:Path):
    env = dict(
        os.environ,
        HF_HUB_OFFLINE='1',
        TRANSFORMERS_OFFLINE='1',
        HF_DATASETS_OFFLINE='1',
        MPLBACKEND='Agg',
        TOKENIZERS_PARALLELISM='false',
        PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
    )
    t = time.time()
    try:
        r = subprocess.run([sys.executable, str(ROOT/'tools'/'run_nb.py'), str(nb), '--timeout', str(TIMEOUT)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT + 60)
        return r.returncode, r.stdout + r.stderr, time.time() - t
    except subprocess.TimeoutExpired as e:
        return -1, f'timed out after {TIMEOUT + 60} s\n{e.stdout or ""}{e.stderr or ""}', time.time() - t

@pytest.fixture(scope='module')
def results(request):
    "Run the selected notebooks, WORKERS at a time; {notebook: (returncode, output, seconds)}"
    chosen = [it.callspec.params['nb'] for it in request.session.items
              if getattr(it, 'originalname', '') == 'test_notebook_runs_top_to_bottom']
    t = time.time()
    with ThreadPoolExecutor(WORKERS) as pool: res = dict(zip(chosen, pool.map(_run, chosen)))
    print(
        f'\n{len(NBS)} notebooks in {time.time() - t:.0f} s: '
        + ', '.join(f'{p.name} {r[2]:.0f}s' for p, r in res.items())
    )
    return res

@pytest.mark.parametrize('nb', NBS, ids=[str(p.relative_to(ROOT)) for p in NBS])
def test_notebook_runs_top_to_bottom(results, nb):
    rc, out, dt = results[nb]
    assert rc == 0, f'{nb.relative_to(ROOT)} failed in a fresh kernel after {dt:.0f} s:\n{out[-4000:]}'
