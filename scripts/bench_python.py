#!/usr/bin/env python3
"""Training from Python against the CLI: examples/s on the ML-100K config.

Alternates CLI and Python runs of the same config and seed (the same
training, bit for bit), reads `examples_per_second` from each run's
metrics.json and prints mean ± std per side, then times `recommend` for a
batch of 1,000 users in one call. Needs the package installed (`bash
scripts/test-python.sh` builds it into target/py-venv) and the release CLI:

    target/py-venv/bin/python scripts/bench_python.py --repeats 5
"""
import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import twotower

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "ml-100k.toml"))
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "twotower"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--set", action="append", default=["train.seed=1"])
    args = ap.parse_args()
    sets = [a for s in args.set for a in ("--set", s)]
    eps = {"cli": [], "python": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            out = Path(tmp) / f"cli{r}"
            subprocess.run([args.bin, "train", "--config", args.config, *sets,
                            "--out", str(out), "--quiet"], check=True, capture_output=True)
            eps["cli"].append(json.loads((out / "metrics.json").read_text())["examples_per_second"])
            run = twotower.train(config=args.config, overrides=args.set,
                                 out=Path(tmp) / f"py{r}", on_epoch=lambda rec: None)
            eps["python"].append(run.metrics["examples_per_second"])
            print(f"repeat {r + 1}: cli {eps['cli'][-1]:.0f}  python {eps['python'][-1]:.0f} examples/s")
        for side, v in eps.items():
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            print(f"{side:<7} {statistics.mean(v):>9.0f} ± {sd:.0f} examples/s ({len(v)} runs)")
        ratio = statistics.mean(eps["python"]) / statistics.mean(eps["cli"])
        print(f"python / cli = {ratio:.3f}")
        ids, _ = run.user_vectors()
        users = (ids * 2)[:1000]
        t = time.perf_counter()
        items, _ = run.recommend(users, k=50)
        dt = time.perf_counter() - t
        print(f"recommend: 1,000 users, k 50, one call: {dt * 1000:.1f} ms ({items.shape})")


if __name__ == "__main__":
    main()
