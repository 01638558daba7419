#!/usr/bin/env python3
"""Offline docs tools: `python tools/docs.py readme [--check]` writes README.md from index.ipynb.

Quarto (what `nbdev_readme`/`nbdev_docs` call) is not installable everywhere, so this runs nbdev's own
notebook processors (the ones Quarto's build is fed with) and converts the result with nbconvert.
The GitHub deploy workflow still builds the site with Quarto.
"""
import argparse, copy, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def processed_nb(path):
    "Read a notebook and run nbdev's docs processors over it (as `nbdev_proc_nbs` does)"
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    from fastcore.xtras import working_directory
    nb = read_nb(path)
    with working_directory(ROOT/'nbs'): FilterDefaults()(nb)
    return nb

def split_frontmatter(md):
    "(dict of front matter, rest) from a Markdown string that may open with a YAML block"
    import yaml
    m = re.match(r'\s*---\n(.*?)\n---\n', md, re.S)
    if not m: return {}, md
    return yaml.safe_load(m.group(1)) or {}, md[m.end():]

def nb_markdown(path):
    "Markdown of a processed notebook (front matter turned into a title and description)"
    from nbconvert import MarkdownExporter
    from nbformat import from_dict
    nb = processed_nb(path)
    d = from_dict({'cells': [dict(c) for c in nb.cells], 'metadata': dict(nb.get('metadata', {})),
                   'nbformat': 4, 'nbformat_minor': 5})
    for c in d.cells:
        c.setdefault('metadata', {})
        if c.cell_type == 'code': c.setdefault('outputs', []); c.setdefault('execution_count', None)
    md, _ = MarkdownExporter(exclude_raw=False).from_notebook_node(d)
    fm, body = split_frontmatter(md.lstrip())
    head = f"# {fm.get('title', Path(path).stem)}\n\n"
    if fm.get('description'): head += f"> {fm['description']}\n\n"
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return head + body

def quickstart(n):
    "The n-th command (1-based) of README.md's quick-start block, verbatim (no imports: runs before install)"
    md = (ROOT/'README.md').read_text()
    m = re.search(r'## Quick start.*?```sh\n(.*?)```', md, re.S)
    if not m: raise SystemExit('README.md has no quick-start ```sh block')
    cmds = [l for l in m.group(1).splitlines() if l.strip() and not l.lstrip().startswith('#')]
    return cmds[n-1]

def readme(check=False):
    "Write README.md from index.ipynb; with `check`, exit 1 if the committed README differs"
    new = nb_markdown(ROOT/'index.ipynb')
    out = ROOT/'README.md'
    if check:
        old = out.read_text() if out.exists() else ''
        if old != new:
            print('README.md is out of date with index.ipynb: run `python tools/docs.py readme`', file=sys.stderr)
            return 1
        print('README.md matches index.ipynb'); return 0
    out.write_text(new); print(f'wrote {out}'); return 0

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('readme', help='README.md from index.ipynb'); r.add_argument('--check', action='store_true')
    q = sub.add_parser('quickstart', help="print README's n-th quick-start command"); q.add_argument('n', type=int)
    a = ap.parse_args()
    if a.cmd == 'quickstart': print(quickstart(a.n)); sys.exit(0)
    sys.exit(readme(a.check))
