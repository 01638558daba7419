"""The shape of the code the docs teach: no function above cyclomatic complexity 20 (radon), no module over 600
lines, no pyflakes error (ruff's F rules), and notebook export cells of one definition and at most 40 lines.
Each test lists every offender by name (function and module, or notebook and cell), not just the first."""
import ast, json, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT/'rcc_rank'
MAX_CC, MAX_MODULE_LINES, MAX_CELL_LINES = 20, 600, 40

def _modules(): return sorted(p for p in LIB.rglob('*.py') if p.name != '_modidx.py')

def test_no_function_above_complexity_20():
    "radon's cyclomatic complexity of every function, method and class in the library (what `radon cc -n D` lists)"
    from radon.complexity import cc_visit
    assert len(_modules()) > 10 and cc_visit('def f(x):\n    if x: return 1\n    return 2')[0].complexity == 2
    bad = [f'{p.relative_to(ROOT)}:{b.lineno} {b.fullname} (CC {b.complexity})'
           for p in _modules() for b in cc_visit(p.read_text()) if b.complexity > MAX_CC]
    assert not bad, f'{len(bad)} above cyclomatic complexity {MAX_CC}:\n' + '\n'.join(bad)

def test_no_module_over_600_lines():
    long = {p: len(p.read_text().splitlines()) for p in _modules()}
    bad = [f'{p.relative_to(ROOT)}: {n} lines' for p, n in long.items() if n > MAX_MODULE_LINES]
    assert not bad, f'modules over {MAX_MODULE_LINES} lines:\n' + '\n'.join(bad)

def test_ruff_pyflakes_rules_pass():
    "ruff's F rules (unused imports and variables, undefined names, redefinitions) on the library"
    r = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--select', 'F', '--output-format', 'concise',
                        '--no-cache', 'rcc_rank'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f'ruff check --select F rcc_rank:\n{r.stdout}{r.stderr}'

def _export_cells():
    "(notebook, cell id, code without directives) of every `#| export` / `#| exports` cell in nbs/"
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            src = ''.join(c['source']) if c['cell_type'] == 'code' else ''
            if any(re.match(r'#\|\s*export', l) for l in src.splitlines()[:3]):
                yield nb.name, c.get('id'), '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()

def test_export_cells_one_definition_at_most_40_lines():
    bad, cells = [], list(_export_cells())
    assert len(cells) > 100, f'only {len(cells)} export cells found in nbs/'
    for nb, cid, code in cells:
        try:
            tree = ast.parse(code)
        except SyntaxError as e:
            bad.append(f'{nb} cell {cid}: does not parse ({e.msg})')
            continue
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        if len(defs) > 1: bad.append(f'{nb} cell {cid}: {len(defs)} definitions ({", ".join(defs)})')
        n = len(code.splitlines())
        if n > MAX_CELL_LINES: bad.append(f'{nb} cell {cid}: {n} lines ({", ".join(defs) or "no definition"})')
    assert not bad, f'{len(bad)} export cells with several definitions or over {MAX_CELL_LINES} lines:\n' + '\n'.join(
        bad
    )
