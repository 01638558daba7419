"""The house: the package is split into wings (subpackages) whose imports point only downward (import-linter
contracts in pyproject.toml), nothing in the library imports the testing wing, the generated `__init__` files are
current, and every public name is importable from the top-level package."""
import subprocess, sys, importlib, shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import wings  # noqa: E402


def test_import_contracts_pass():
    exe = shutil.which('lint-imports') or str(Path(sys.executable).parent/'lint-imports')
    r = subprocess.run([exe, '--no-cache'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert 'Contracts: 3 kept, 0 broken' in r.stdout, r.stdout[-2000:]


def test_wings_only_no_flat_modules():
    flat = sorted(p.name for p in (ROOT/'rcc_rank').glob('*.py') if p.name not in ('__init__.py', '_modidx.py'))
    assert not flat, f'modules outside the wings: {flat}'
    assert sorted(p.name for p in (ROOT / 'rcc_rank').iterdir() if p.is_dir() and p.name != '__pycache__') == sorted(
        wings.WINGS
    )


def test_generated_inits_are_current():
    r = subprocess.run([sys.executable, 'tools/wings.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_top_level_reexports_resolve():
    import rcc_rank
    ex = rcc_rank._EXPORTS
    assert {'Chain', 'train', 'load_source', 'chain_objective', 'ranking_metrics', 'tiny_model'} <= set(ex)
    assert not any(m.startswith('rcc_rank.testing') for m in ex.values())
    for name, mod in ex.items():
        assert getattr(importlib.import_module(mod), name) is getattr(rcc_rank, name), name
    from rcc_rank import Chain, train
    assert Chain.__module__ == 'rcc_rank.data.chains' and train.__module__ == 'rcc_rank.training.train'
