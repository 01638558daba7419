"""The shape of the code the docs teach. Each test lists every offender by name (function and module, or notebook and
cell), not just the first:
- no function or method above cyclomatic complexity MAX_CC (radon), no module over MAX_MODULE_LINES lines;
- no pyflakes error (ruff's F rules); one statement a line and lines of at most 120 characters (ruff E702, E703,
  E501) in the library and the tests, nbdev's generated `_modidx.py` and `__all__` lines exempt;
- imports of the package's own modules at module top, never inside a function (the arrows stay visible);
- notebook export cells of one definition and at most MAX_CELL_LINES lines, and never more than MAX_EXPORT_RUN
  exported cells in a row without a sentence or an example between them."""
import ast, json, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT/'rcc_rank'
MAX_CC, MAX_MODULE_LINES, MAX_CELL_LINES, MAX_EXPORT_RUN = 15, 450, 40, 3


def _modules():
    return sorted(p for p in LIB.rglob('*.py') if p.name != '_modidx.py')


def _functions(blocks):
    "radon's functions and methods (a class's own figure is the sum of its methods, so it is not a function's)"
    for b in blocks:
        if hasattr(b, 'methods'): yield from b.methods
        else: yield b


def test_no_function_above_max_complexity():
    "radon's cyclomatic complexity of every function and method in the library (what `radon cc -n C` lists)"
    from radon.complexity import cc_visit
    assert len(_modules()) > 10 and cc_visit('def f(x):\n    if x: return 1\n    return 2')[0].complexity == 2
    bad = [f'{p.relative_to(ROOT)}:{b.lineno} {b.fullname} (CC {b.complexity})'
           for p in _modules() for b in _functions(cc_visit(p.read_text())) if b.complexity > MAX_CC]
    assert not bad, f'{len(bad)} above cyclomatic complexity {MAX_CC}:\n' + '\n'.join(bad)


def test_no_module_over_max_lines():
    long = {p: len(p.read_text().splitlines()) for p in _modules()}
    bad = [f'{p.relative_to(ROOT)}: {n} lines' for p, n in long.items() if n > MAX_MODULE_LINES]
    assert not bad, f'modules over {MAX_MODULE_LINES} lines:\n' + '\n'.join(bad)


def test_ruff_pyflakes_rules_pass():
    "ruff's F rules (unused imports and variables, undefined names, redefinitions) on the library"
    r = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--select', 'F', '--output-format', 'concise',
                        '--no-cache', 'rcc_rank'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f'ruff check --select F rcc_rank:\n{r.stdout}{r.stderr}'


def _all_lines(path: Path) -> set[int]:
    "The line numbers of a module's `__all__` statement (nbdev writes it)"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
            return set(range(node.lineno, node.end_lineno + 1))
    return set()


def test_one_statement_a_line_and_short_lines():
    "ruff E501 (120 characters), E702 and E703 on the library and the tests; `_modidx.py` and `__all__` exempt"
    r = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--isolated', '--select', 'E501,E702,E703',
                        '--line-length', '120', '--output-format', 'json', '--exclude', 'rcc_rank/_modidx.py',
                        'rcc_rank', 'tests'], cwd=ROOT, capture_output=True, text=True)
    found = json.loads(r.stdout or '[]')
    assert r.returncode in (0, 1) and isinstance(found, list), r.stderr
    bad = [f"{Path(e['filename']).relative_to(ROOT)}:{e['location']['row']} {e['code']}" for e in found
           if e['location']['row'] not in _all_lines(Path(e['filename']))]
    assert not bad, f'{len(bad)} long or compound lines:\n' + '\n'.join(bad)


def test_own_imports_at_module_top():
    "No `from rcc_rank...` (or relative) import inside a function of the library"
    bad = []
    for p in _modules():
        for f in ast.walk(ast.parse(p.read_text())):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
            for i in ast.walk(f):
                if isinstance(i, ast.ImportFrom) and (i.level > 0 or (i.module or '').startswith('rcc_rank')):
                    bad.append(f'{p.relative_to(ROOT)}:{i.lineno} in {f.name}: from {"." * i.level}{i.module}')
    assert not bad, f'{len(bad)} imports of our own modules inside functions:\n' + '\n'.join(bad)


def _cells(nb: Path):
    "(is an export cell, cell id, source) of every non-empty cell of a notebook"
    for c in json.loads(nb.read_text())['cells']:
        src = ''.join(c['source'])
        if not src.strip(): continue
        head = src.splitlines()[:3] if c['cell_type'] == 'code' else []
        yield any(re.match(r'#\|\s*exports?\b', line) for line in head), c.get('id'), src


def _export_cells():
    "(notebook, cell id, code without directives) of every `#| export` / `#| exports` cell in nbs/"
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for exp, cid, src in _cells(nb):
            if not exp: continue
            yield nb.name, cid, '\n'.join(line for line in src.splitlines() if not line.startswith('#|')).strip()


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
    what = f'export cells with several definitions or over {MAX_CELL_LINES} lines'
    assert not bad, f'{len(bad)} {what}:\n' + '\n'.join(bad)


def test_prose_or_an_example_between_exported_cells():
    "At most MAX_EXPORT_RUN exported cells in a row: prose or a shown example between (hidden cells do not count)"
    bad = []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        run = 0
        for exp, cid, src in _cells(nb):
            if exp: run += 1
            elif not src.lstrip().startswith('#| hide'): run = 0
            if run == MAX_EXPORT_RUN + 1: bad.append(f'{nb.name} cell {cid}')
    assert not bad, f'{len(bad)} runs of more than {MAX_EXPORT_RUN} exported cells without prose:\n' + '\n'.join(bad)
