"Repository wiring: the README, the CI entry point and the settings agree."
import configparser, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_readme_matches_index():
    r = subprocess.run([sys.executable, 'tools/docs.py', 'readme', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_readme_opens_with_two_commands():
    md = (ROOT/'README.md').read_text()
    block = md.split('```sh\n', 1)[1].split('```', 1)[0]
    cmds = [l for l in block.splitlines() if l.strip()]
    assert len(cmds) == 2, cmds
    assert cmds[0].endswith('rcc-demo') and 'tools/test.sh' in cmds[1]

def test_ci_runs_readme_line_2():
    assert 'tools/docs.py quickstart 2' in (ROOT/'.ci'/'run').read_text()

def test_index_is_single_copy():
    link = ROOT/'nbs'/'index.ipynb'
    assert link.is_symlink() and link.resolve() == (ROOT/'index.ipynb').resolve()

def test_console_scripts_point_at_exported_functions():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    scripts = cfg['DEFAULT']['console_scripts'].split()
    names = {s.split('=')[0] for s in scripts}
    assert {'rcc-generate', 'rcc-train', 'rcc-evaluate', 'rcc-demo', 'rcc-experiment'} <= names
    for s in scripts:
        mod, fn = s.split('=')[1].split(':')
        assert (ROOT/(mod.replace('.', '/') + '.py')).exists(), f'{s}: module not exported yet'

def test_console_script_exits_zero_on_success(tmp_path):
    "A console script wrapper does `sys.exit(fn())`: the entry points must return None on success"
    (tmp_path / 'in.jsonl').write_text(
        '{"id": "a", "caption": "A red ball rolls left past a small wooden box on the table."}\n'
    )
    script = tmp_path/'rcc_generate_script.py'   # what pip writes for a console script
    script.write_text("import sys\nfrom rcc_rank.recipes.generate import rcc_generate\nsys.exit(rcc_generate())\n")
    args = [str(tmp_path/'in.jsonl'), str(tmp_path/'out.jsonl'), '--length', '3', '--tagger', 'keywords', '--quiet']
    r = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'out.jsonl').read_text().count('\n') == 1

def test_index_links_every_page_and_the_paper():
    "The landing page's notebook table links every page of the sidebar; the paper is linked"
    sys.path.insert(0, str(ROOT/'tools'))
    import docs
    md = (ROOT/'README.md').read_text()
    table = md.split('## Where things are', 1)[1].split('\n## ', 1)[0]
    linked = set(re.findall(r'\]\(https://rcc-rank\.github\.io/rcc-rank/([\w.-]+\.html)\)', table))
    pages = {docs.page_name(nb) for _, nb in docs.sidebar_pages() if nb.name != 'index.ipynb'}
    assert pages <= linked, f'pages missing from the table in index.ipynb: {sorted(pages - linked)}'
    assert not linked - pages, f'table rows for pages that do not exist: {sorted(linked - pages)}'
    assert '](https://arxiv.org/abs/2603.25145)' in md

def test_page_descriptions_are_plain_text():
    "A notebook's `> description` line is shown as plain text on its page: no backticks"
    import json
    bad = []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        first = ''.join(json.loads(nb.read_text())['cells'][0]['source'])
        bad += [f'{nb.name}: {l}' for l in first.splitlines() if l.startswith('>') and '`' in l]
    assert not bad, 'descriptions with backticks (shown raw on the site):\n' + '\n'.join(bad)
