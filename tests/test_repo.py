"Repository wiring: the README, the CI entry point and the settings agree."
import configparser, subprocess, sys
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
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    scripts = cfg['DEFAULT']['console_scripts'].split()
    names = {s.split('=')[0] for s in scripts}
    assert {'rcc-generate', 'rcc-train', 'rcc-evaluate', 'rcc-demo', 'rcc-experiment'} <= names
    for s in scripts:
        mod, fn = s.split('=')[1].split(':')
        assert (ROOT/(mod.replace('.', '/') + '.py')).exists(), f'{s}: module not exported yet'

def test_console_script_exits_zero_on_success(tmp_path):
    "A console script wrapper does `sys.exit(fn())`: the entry points must return None on success"
    (tmp_path/'in.jsonl').write_text('{"id": "a", "caption": "A red ball rolls left past a small wooden box on the table."}\n')
    script = tmp_path/'rcc_generate_script.py'   # what pip writes for a console script
    script.write_text("import sys\nfrom rcc_rank.generate import rcc_generate\nsys.exit(rcc_generate())\n")
    args = [str(tmp_path/'in.jsonl'), str(tmp_path/'out.jsonl'), '--length', '3', '--tagger', 'keywords', '--quiet']
    r = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'out.jsonl').read_text().count('\n') == 1
