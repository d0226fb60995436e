#!/usr/bin/env bash
# CI for the Python client (run from anywhere; .ci/run calls `bash clients/python/ci.sh`).
# Installs its own dev tools (pytest, mypy) into virtual environments, installs the
# package itself from this directory (so the wheel's contents are what gets tested),
# type-checks with mypy --strict, and runs the unit and integration tests under this
# machine's python3 and, when present, an older Python (3.9) too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venvs="${BEUSS_PY_VENVS:-$here/.venv}"
python="${PYTHON:-python3}"
# The older interpreter: $PYTHON_OLD, else python3.9 on PATH, else pyenv's 3.9; the
# first that really runs (a pyenv shim may exist without the version behind it).
old=""
for cand in "${PYTHON_OLD:-}" python3.9 "$HOME"/.pyenv/versions/3.9*/bin/python; do
  if [ -n "$cand" ] && "$cand" -c 'import sys; assert sys.version_info < (3, 11)' 2>/dev/null; then
    old="$cand"
    break
  fi
done

# Without $BEUSS_SERVER, the checkout's own debug build, brought up to date (a no-op
# when it is), so that a stale binary from an older checkout is never tested.
if [ -z "${BEUSS_SERVER:-}" ]; then
  (cd "$repo" && cargo build --quiet --bin beuss-server)
  export BEUSS_SERVER="$repo/target/debug/beuss-server"
fi

pip_quiet=(--quiet --disable-pip-version-check --no-input)

# setup NAME INTERPRETER PACKAGES...: a venv with the dev tools and beuss installed.
setup() {
  local dir="$venvs/$1" interp="$2"; shift 2
  [ -x "$dir/bin/python" ] || "$interp" -m venv "$dir"
  "$dir/bin/python" -m pip install "${pip_quiet[@]}" "$@"
  "$dir/bin/python" -m pip install "${pip_quiet[@]}" --force-reinstall --no-deps "$here"
}

run_tests() {
  local dir="$venvs/$1"
  echo "python client: tests under $("$dir/bin/python" --version)"
  # From the tests' parent, without src/ on the path: the installed package is tested.
  (cd "$here" && "$dir/bin/python" -m pytest -q -p no:cacheprovider tests)
}

setup main "$python" pytest mypy
echo "python client: mypy --strict"
(cd "$here" && "$venvs/main/bin/python" -m mypy --strict --no-incremental src/beuss)
run_tests main

if [ -n "$old" ]; then
  setup old "$old" pytest mypy
  echo "python client: mypy --strict under $("$venvs/old/bin/python" --version)"
  (cd "$here" && "$venvs/old/bin/python" -m mypy --strict --no-incremental src/beuss)
  run_tests old
else
  echo "python client: no Python 3.9 found (set PYTHON_OLD); skipping the older-version run"
fi
echo "python client: ok"
