#!/usr/bin/env python3
"""Held-back users: recommendations for users the model has never seen.

A seeded sample of users (with >= 5 interactions) is removed from the data
before training. After training, each held-back user is given their first
items (all but the last ceil(0.2 n), in the split's order: timestamp, then
item id) through `twotower recommend --queries` -- the history feature
builds their vector with no retraining -- and their later items are the
targets. Reported: recall@K over those users (|top-K ∩ later| / |later|,
the user's given items excluded from the ranking), against most-popular
(train counts of the reduced data, the given items excluded).

Only the standard library; the binary is ./target/release/twotower.

    python3 scripts/held_back_users.py --config configs/steam.toml \
        --interactions ../shared/data/steam/interactions.csv --users 1000 --out runs/heldback-steam
"""

import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict


def id_key(ids):
    """EVALUATION.md "by id": numeric when every id parses, else bytes."""
    try:
        [int(i) for i in ids]
        return lambda i: (int(i),)
    except ValueError:
        return lambda i: (i.encode(),)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--config", required=True)
    ap.add_argument("--interactions", required=True, help="the config's interactions CSV")
    ap.add_argument("--user-col", default="user_id")
    ap.add_argument("--item-col", default="item_id")
    ap.add_argument("--time-col", default="timestamp")
    ap.add_argument("--users", type=int, default=1000, help="users held back")
    ap.add_argument("--seed", type=int, default=1, help="sample and train.seed")
    ap.add_argument("-k", type=int, default=50)
    ap.add_argument("--bin", default="./target/release/twotower")
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[], help="extra train --set KEY=VALUE")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    with open(a.interactions, newline="") as f:
        r = csv.DictReader(f)
        header = r.fieldnames
        rows = list(r)
    by_user = defaultdict(list)
    for row in rows:
        by_user[row[a.user_col]].append(row)
    item_order = id_key([row[a.item_col] for row in rows])
    eligible = sorted(u for u, v in by_user.items() if len(v) >= 5)
    rng = random.Random(a.seed)
    held = set(rng.sample(eligible, min(a.users, len(eligible))))

    kept = os.path.abspath(os.path.join(a.out, "interactions_kept.csv"))
    with open(kept, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for row in rows:
            if row[a.user_col] not in held:
                w.writerow(row)

    queries, targets = [], []
    for u in sorted(held):
        seq = sorted(by_user[u], key=lambda x: (int(x[a.time_col]), item_order(x[a.item_col])))
        n_later = math.ceil(0.2 * len(seq))
        given = [x[a.item_col] for x in seq[:-n_later]]
        later = {x[a.item_col] for x in seq[-n_later:]} - set(given)
        if later:
            queries.append(given)
            targets.append(later)
    qpath = os.path.join(a.out, "queries.txt")
    with open(qpath, "w") as f:
        for g in queries:
            f.write(",".join(g) + "\n")

    run = os.path.join(a.out, "run")
    train = [a.bin, "train", "--config", a.config, "--out", run, "--force", "-q",
             "--set", f"data.interactions.file={kept}", "--set", f"train.seed={a.seed}"]
    for s in a.set:
        train += ["--set", s]
    subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
    res = subprocess.run([a.bin, "recommend", "--run", run, "--queries", qpath, "-k", str(a.k)],
                         check=True, capture_output=True, text=True)
    top = defaultdict(list)
    for line in res.stdout.splitlines()[1:]:
        q, _, item, _ = line.split("\t")
        top[int(q) - 1].append(item)

    counts = Counter(row[a.item_col] for row in rows if row[a.user_col] not in held)
    with open(a.interactions.replace("interactions.csv", "items.csv"), newline="") as f:
        catalog = [row[a.item_col] for row in csv.DictReader(f)]
    popular = sorted(catalog, key=lambda i: (-counts[i], item_order(i)))

    def recall(lists):
        return sum(len(set(l) & t) / len(t) for l, t in zip(lists, targets)) / len(targets)

    pop_lists = []
    for g in queries:
        seen = set(g)
        pop_lists.append([i for i in popular if i not in seen][: a.k])
    model = recall([top[q] for q in range(len(queries))])
    pop = recall(pop_lists)
    out = {"config": a.config, "held_back_users": len(queries), "k": a.k, "seed": a.seed,
           f"recall@{a.k}": model, f"most_popular_recall@{a.k}": pop,
           "mean_given_items": sum(map(len, queries)) / len(queries)}
    with open(os.path.join(a.out, "heldback.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
