#!/usr/bin/env bash
# Builds the Python package (crates/twotower-py) into a virtualenv with
# maturin and runs its pytest suite against the CLI. Called by .ci/run; by
# hand: `bash scripts/test-python.sh`. VENV (default target/py-venv) is
# created when missing; pip, maturin, pytest, numpy and pandas are
# installed into it (a VENV you give is changed so). The CLI binary is
# $TWOTOWER_BIN when set, else the dev-profile build in cargo's target
# dir ($CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-$PWD/target/py-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's python3 ships venv separately
        echo "== installing python3-venv"
        SUDO=""
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "maturin>=1.5,<2" pytest numpy pandas
# the tests compare the package's runs with the CLI's: the dev-profile
# binary that `cargo test --workspace` already built (Rust has no fast-math,
# so both profiles compute the same floats; the tests check that too)
cargo build --quiet -p twotower-cli
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${TWOTOWER_BIN:-$TARGET/debug/twotower}"
(cd crates/twotower-py && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release --quiet)
# pytest exits 5 when it collects no test: set -e fails the script on that too
TWOTOWER_BIN="$BIN" "$VENV/bin/python" -m pytest crates/twotower-py/tests -q
