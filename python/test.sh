#!/usr/bin/env bash
# The Python package's checks: formatting and lints of its Rust code, a
# build into a cached virtual environment, the pytest suite and the README
# example. Called by ./test at the repository root; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
cache="${MMBLOB_CACHE:-$HOME/.cache/mmblob}"
venv="$cache/venv"
# The crate is outside the root workspace: its own target directory, cached.
export CARGO_TARGET_DIR="${MMBLOB_PYTHON_TARGET:-$cache/python-target}"
mkdir -p "$cache"

echo "python: cargo fmt --check, cargo clippy -D warnings (mmblob-python)"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

if [ ! -x "$venv/bin/python" ]; then
    echo "python: creating the virtual environment $venv"
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
# Installs only what is missing, so a warm cache needs no network.
if ! "$py" -c "import numpy, pytest, mypy" >/dev/null 2>&1 || ! [ -x "$venv/bin/maturin" ]; then
    echo "python: installing maturin, numpy, pytest, mypy into $venv"
    "$py" -m pip install --quiet --upgrade pip
    "$py" -m pip install --quiet "maturin>=1.5,<2" numpy pytest mypy
fi

echo "python: building and installing the package (maturin develop --release)"
(
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
    maturin develop --release --quiet
)

echo "python: mypy --strict (the package and its stubs)"
(cd "$here" && "$py" -m mypy --strict --no-error-summary mmblob)

echo "python: pytest python/tests"
set +e
"$py" -m pytest -q "$here/tests"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "python: pytest collected no tests" >&2
    exit 1
elif [ "$status" -ne 0 ]; then
    exit "$status"
fi

echo "python: the README example (examples/quickstart.py)"
# The README shows this file verbatim; check that it still does.
"$py" - "$here/README.md" "$here/../README.md" "$here/examples/quickstart.py" <<'PY'
import sys
*readmes, example = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
for path, readme in zip(sys.argv[1:], readmes):
    if example.strip() not in readme:
        sys.exit(f"{path} does not show examples/quickstart.py verbatim; update it")
PY
(cd "$(mktemp -d)" && "$py" "$here/examples/quickstart.py")
echo "python: all checks passed"
