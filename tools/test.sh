#!/usr/bin/env bash
# The whole test suite (README quick-start line 2 runs this after installing the dev dependencies).
#   bash tools/test.sh            everything
#   bash tools/test.sh --flags api gpu   also run notebook cells flagged api/gpu (needs a key / a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONHASHSEED=0 MPLBACKEND=Agg
flags=""
if [ "${1:-}" = "--flags" ]; then shift; flags="$*"; fi
start=$(date +%s)

echo "== 1/6 library in step with the notebooks (nbdev_export changes nothing)"
if git rev-parse --git-dir >/dev/null 2>&1; then
  before=$(git status --porcelain -- rcc_rank)
  nbdev_export
  after=$(git status --porcelain -- rcc_rank)
  if [ "$before" != "$after" ]; then
    echo "nbdev_export changed rcc_rank/: export the notebooks and commit the library"; git status --porcelain -- rcc_rank; exit 1
  fi
  echo "== 2/6 notebooks clean (nbdev_clean changes nothing)"
  before=$(git status --porcelain -- nbs index.ipynb)
  nbdev_clean
  after=$(git status --porcelain -- nbs index.ipynb)
  if [ "$before" != "$after" ]; then
    echo "nbdev_clean changed notebooks: run nbdev_clean (or nbdev_install_hooks) and commit"; git status --porcelain -- nbs index.ipynb; exit 1
  fi
else
  echo "(not a git checkout: sync and clean checks skipped)"
fi

echo "== 3/6 lint: ruff check (pyflakes rules on rcc_rank/ and tests/, configured in pyproject.toml)"
ruff check

echo "== 4/6 README.md generated from index.ipynb"
python3 tools/docs.py readme --check

echo "== 5/6 notebooks (nbdev_test)"
if [ -n "$flags" ]; then nbdev_test --n_workers 2 --timing --flags "$flags"; else nbdev_test --n_workers 2 --timing; fi

echo "== 6/6 system tests (pytest tests/)"
# the docs test opens pages in Debian's Chromium: install it where missing and apt-get can (root, or passwordless sudo)
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo="sudo -n"; }
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "(installing chromium for tests/test_docs.py)"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; } \
      || echo "(chromium could not be installed: the browser checks in tests/test_docs.py will be skipped)"
  fi
fi
echo "(elapsed before pytest: $(( $(date +%s) - start )) s)"
python3 -m pytest -q tests
