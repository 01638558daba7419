#!/usr/bin/env python3
"""Run notebooks top to bottom in a fresh Jupyter kernel, as JupyterLab would.

    python tools/run_nb.py nbs/05_losses.ipynb [more.ipynb ...] [--inplace] [--flags api gpu]

Cells marked `#| eval: false`, or carrying a `tst_flags` flag (settings.ini) that is not enabled,
are skipped and listed, exactly as `nbdev_test` skips them. `--inplace` saves the outputs into the
notebook (then run `nbdev_clean`). Exits non-zero on the first error, naming the notebook and cell.
"""
import argparse, configparser, re, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def tst_flags():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    return set(re.split(r'[\s|]+', cfg['DEFAULT'].get('tst_flags', ''))) - {''}

def directives(src):
    "nbdev directives of a cell (`#| key value`) as a dict of lists"
    out = {}
    for line in src.splitlines():
        m = re.match(r'\s*#\s*\|\s*([\w-]+):?\s*(.*)', line)
        if m: out[m.group(1).lower()] = m.group(2).split()
        elif line.strip() and not line.lstrip().startswith('#'): break
    return out

def skip_reason(cell, flags, enabled):
    if cell.cell_type != 'code': return None
    d = directives(cell.source)
    if d.get('eval') == ['false']: return 'eval: false'
    for f in flags - set(enabled):
        if f in d: return f'flag {f!r} not enabled'
    return None

def run(path, inplace=False, enabled=(), timeout=600):
    import nbformat
    from nbclient import NotebookClient
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    flags, skipped, keep = tst_flags(), [], []
    for i, c in enumerate(nb.cells):
        r = skip_reason(c, flags, enabled)
        if r:
            skipped.append((i, r))
            c.metadata['rcc_skip'] = r
    runnable = nbformat.from_dict(dict(nb))
    runnable.cells = [c for c in nb.cells if 'rcc_skip' not in c.metadata]
    client = NotebookClient(
        runnable, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}
    )
    t = time.time()
    client.execute()
    for c in nb.cells: c.metadata.pop('rcc_skip', None)
    if inplace: nbformat.write(nb, path)
    return time.time() - t, skipped

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='+')
    ap.add_argument('--inplace', action='store_true')
    ap.add_argument('--flags', nargs='*', default=[])
    ap.add_argument('--timeout', type=int, default=600)
    a = ap.parse_args()
    from nbclient.exceptions import CellExecutionError
    for p in a.notebooks:
        try: dt, skipped = run(p, a.inplace, a.flags, a.timeout)
        except CellExecutionError as e:
            print(f'FAILED {p}\n{e}', file=sys.stderr)
            sys.exit(1)
        print(f'ok {p} ({dt:.1f} s)' + (f'; skipped cells {skipped}' if skipped else ''))
