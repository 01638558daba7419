"""Packaging as a user meets it: `python -m build` makes an sdist and a wheel; the wheel installs into a fresh
venv and its console scripts run from there (`--help` for each, and `rcc-demo --quick` end to end).

The venv sees the packages of the environment running the tests through a `.pth` file naming its
site-packages (a venv made with `--system-site-packages` would see the *base* interpreter's packages
instead, which inside a virtualenv lack torch & co.), and the wheel goes in with `--no-deps`; the tests
check the venv imports the wheel's `rcc_rank`, not the checkout's."""
import configparser, os, re, site, subprocess, sys, sysconfig, tarfile, time, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
cfg = configparser.ConfigParser(delimiters=['='])
cfg.read(ROOT / 'settings.ini')
SCRIPTS = dict(s.split('=') for s in cfg['DEFAULT']['console_scripts'].split())   # name -> 'module:function'

def _env(tmp):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONHOME')}
    env.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_DATASETS_OFFLINE='1', MPLBACKEND='Agg',
               TOKENIZERS_PARALLELISM='false', RCC_RANK_HOME=str(tmp/'home'), PIP_NO_INDEX='1',
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    return env

def _run(cmd, tmp, timeout=300, **kw):
    return subprocess.run(cmd, cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=timeout, **kw)

@pytest.fixture(scope='module')
def dist(tmp_path_factory):
    "sdist and wheel from `python -m build` (the wheel is built from the sdist, so the sdist must be complete)"
    out = tmp_path_factory.mktemp('dist')
    t = time.time()
    r = subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f'python -m build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    print(f'python -m build: {time.time()-t:.0f} s')
    sdists, wheels = list(out.glob('*.tar.gz')), list(out.glob('*.whl'))
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    return sdists[0], wheels[0]

def outer_site_packages()->list[str]:
    "site-packages folders of the environment running the tests (a venv's own, then any it inherits)"
    dirs = [sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib'], *site.getsitepackages()]
    dirs += [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))]
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]

@pytest.fixture(scope='module')
def venv(dist, tmp_path_factory):
    ("A fresh venv (seeing this environment's packages through a .pth file) with the wheel installed, "
     "no dependencies fetched")
    tmp = tmp_path_factory.mktemp('venv')
    r = _run([sys.executable, '-m', 'venv', str(tmp/'venv')], tmp)
    assert r.returncode == 0, r.stderr
    py = tmp/'venv'/'bin'/'python'
    r = _run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], tmp)
    assert r.returncode == 0, r.stderr
    # after the venv's own site-packages on sys.path, so the wheel installed there wins over any editable install
    # outside
    (Path(r.stdout.strip())/'_outer_env.pth').write_text('\n'.join(outer_site_packages()) + '\n')
    r = _run([str(py), '-c', 'import torch, fastcore, transformers'], tmp)
    assert r.returncode == 0, f'the venv does not see the outer packages ({outer_site_packages()}):\n{r.stderr[-2000:]}'
    r = _run([str(py), '-m', 'pip', 'install', '--no-deps', '--no-index', '-q', str(dist[1])], tmp)
    assert r.returncode == 0, f'pip install of the wheel failed:\n{r.stdout}\n{r.stderr}'
    return tmp, tmp/'venv'/'bin'

def test_sdist_and_wheel_contents(dist):
    sdist, wheel = dist
    modules = sorted(p.relative_to(ROOT/'rcc_rank').as_posix() for p in (ROOT/'rcc_rank').rglob('*.py'))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = next(n for n in names if n.endswith('.dist-info/entry_points.txt'))
        eps = z.read(entry).decode()
    for m in modules: assert f'rcc_rank/{m}' in names, f'{m} missing from the wheel'
    for name, target in SCRIPTS.items(): assert f'{name} = {target}' in eps, f'{name} missing from the entry points'
    with tarfile.open(sdist) as t: snames = t.getnames()
    for f in ('settings.ini', 'setup.py', 'README.md', 'LICENSE', 'rcc_rank/core/basics.py'):
        assert any(n.endswith('/' + f) for n in snames), f'{f} missing from the sdist'

def test_venv_imports_the_wheel_not_the_checkout(venv):
    tmp, bin = venv
    r = _run([str(bin/'python'), '-c', 'import rcc_rank; print(rcc_rank.__file__, rcc_rank.__version__)'], tmp)
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.split()
    assert Path(path).resolve().is_relative_to((tmp / 'venv').resolve()), (
        f'imported {path}, not the wheel in {tmp / "venv"}'
    )
    assert version == cfg['DEFAULT']['version']

def _script(venv, name):
    "Path of an installed console script, failing clearly when its module is not written yet"
    mod = SCRIPTS[name].split(':')[0]
    src = ROOT/(mod.replace('.', '/') + '.py')
    fn = SCRIPTS[name].split(':')[1]
    if not src.exists():
        pytest.fail(
            f'{name}: its module {mod} ({src.relative_to(ROOT)}) is not exported yet, so the wheel has no {name}'
        )
    if not re.search(rf'^(def {fn}\b|{fn}\s*=|@call_parse\s*\ndef {fn}\b)', src.read_text(), re.M):
        pytest.fail(f'{name}: {mod} has no function {fn} yet (settings.ini console_scripts points at {SCRIPTS[name]})')
    exe = venv[1]/name
    assert exe.exists(), f'{name}: not installed into the venv'
    return exe

@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_console_script_help(venv, name):
    exe = _script(venv, name)
    r = _run([str(exe), '--help'], venv[0], timeout=120)
    assert r.returncode == 0, f'{name} --help exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}'
    assert 'usage' in r.stdout.lower(), f'{name} --help printed no usage:\n{r.stdout[-1000:]}'

def test_demo_quick_from_the_wheel(venv):
    exe = _script(venv, 'rcc-demo')
    t = time.time()
    r = _run([str(exe), '--quick'], venv[0], timeout=240)
    dt = time.time() - t
    hint = ''
    if r.returncode == 1 and 'Traceback' not in r.stderr and r.stderr.strip():
        hint = ('\n(no traceback, exit 1, and a value on stderr: the entry function returned a non-int value, '
                'which a console script hands to sys.exit; return None or an int)')
    assert r.returncode == 0, (
        f'rcc-demo --quick exited {r.returncode} after {dt:.0f} s{hint}:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}'
    )
    print(f'rcc-demo --quick: {dt:.0f} s')
    assert 'Traceback' not in r.stderr
