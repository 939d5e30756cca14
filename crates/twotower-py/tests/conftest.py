"""Shared fixtures: the repository, the CLI binary, ML-100K, a short config.

The CLI binary is ``$TWOTOWER_BIN``, else ``debug/twotower`` (or
``release/``) in cargo's target dir; ``scripts/test-python.sh`` builds it.
"""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "data"
ML100K_CONFIG = REPO / "configs" / "ml-100k.toml"
# ML-100K, short: the tests compare runs, they do not judge quality
SHORT = {"train.epochs": 2, "train.seed": 1, "train.refit": False}
SHORT_SETS = ["train.epochs=2", "train.seed=1", "train.refit=false"]


def cli_bin():
    """$TWOTOWER_BIN, else the dev or release binary in cargo's target dir
    ($CARGO_TARGET_DIR or target/)."""
    b = os.environ.get("TWOTOWER_BIN")
    if b:
        p = Path(b)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
        found = [target / prof / "twotower" for prof in ("debug", "release")
                 if (target / prof / "twotower").exists()]
        p = found[0] if found else target / "debug" / "twotower"
    if not p.exists():
        pytest.fail(f"the twotower CLI binary {p} is missing: run `cargo build -p twotower-cli` "
                    "(or set TWOTOWER_BIN to a built binary)")
    return p


def cli(*args, check=True):
    """Runs the CLI; returns (stdout, stderr)."""
    r = subprocess.run([str(cli_bin()), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"twotower {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r.stdout, r.stderr


@pytest.fixture(scope="session")
def ml100k_present():
    if not (SHARED / "ml-100k" / "u.data").exists():
        pytest.fail(f"{SHARED / 'ml-100k'} is missing (the shared data sits beside the repository)")


@pytest.fixture(scope="session")
def py_run(tmp_path_factory, ml100k_present):
    """ML-100K trained from Python (2 epochs, seed 1)."""
    import twotower

    out = tmp_path_factory.mktemp("py") / "run"
    return twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=out)


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory, ml100k_present):
    """The same run trained by the CLI."""
    out = tmp_path_factory.mktemp("cli") / "run"
    sets = [a for s in SHORT_SETS for a in ("--set", s)]
    cli("train", "--config", ML100K_CONFIG, *sets, "--out", out, "--quiet")
    return out
