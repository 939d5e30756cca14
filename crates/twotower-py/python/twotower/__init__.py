"""twotower from Python: train, evaluate, recommend and vectors, numpy out.

    run = twotower.train(config="configs/ml-100k.toml",
                         overrides={"train.epochs": 1}, out="runs/x")
    run.metrics["recall@50"]
    ids, vecs = run.item_vectors()          # list[str], float32 [n x d]
    items, scores = run.recommend(["1", "2"], k=10)   # [n_users x k]

Errors raise :class:`TwoTowerError` with the CLI's message; Ctrl-C during
training raises :class:`Interrupted` (a subclass) after a checkpoint.
"""
import json
import os

import numpy as np

from ._native import Interrupted, NativeRun, TwoTowerError, train_run

__all__ = ["train", "load", "Run", "TwoTowerError", "Interrupted"]


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def train(config=None, overrides=None, out="runs/latest", force=False,
          resume=False, verbose=False):
    """Train as ``twotower train --config CONFIG --set K=V ... --out OUT``.

    ``overrides``: dict of config keys (``"loss.temperature": 0.2``) or a list
    of ``"key=value"`` strings. Returns the finished :class:`Run`.
    Raises :class:`TwoTowerError` (bad config, data error with file, line and
    column, an ``out`` that holds a run without ``force``).
    """
    if isinstance(overrides, dict):
        sets = [f"{k}={_value(v)}" for k, v in overrides.items()]
    else:
        sets = list(overrides or [])
    cfg = None if config is None else os.fspath(config)
    train_run(cfg, sets, os.fspath(out), force, resume, verbose)
    return load(out)


def load(run_dir):
    """Load a saved run directory (as ``recommend``/``export`` do)."""
    return Run(run_dir)


def _vectors(t):
    ids, raw, n, d = t
    return ids, np.frombuffer(raw, dtype="<f4").reshape(n, d).astype(np.float32)


class Run:
    """A trained run directory ready for queries."""

    def __init__(self, run_dir):
        self.path = os.fspath(run_dir)
        self._native = NativeRun(self.path)

    @property
    def metrics(self):
        """metrics.json: EVALUATION.md's names (``recall@50``, ...)."""
        with open(os.path.join(self.path, "metrics.json")) as f:
            return json.load(f)

    def item_vectors(self):
        """``(ids, float32 [n_items x d])``, equal to ``export``'s .npy."""
        return _vectors(self._native.item_vectors())

    def user_vectors(self):
        """``(ids, float32 [n_users x d])``, equal to ``export``'s .npy."""
        return _vectors(self._native.user_vectors())

    def _shape(self, res, n, k):
        ids, raw = res
        return (np.array(ids, dtype=object).reshape(n, k),
                np.frombuffer(raw, dtype="<f4").reshape(n, k).copy())

    def recommend(self, users, k=10, exclude_seen=True):
        """Top-k for a batch of user ids in one call (no Python loop).

        Returns ``(item_ids object [n x k], scores float32 [n x k])``; rows
        with fewer than k items are padded with None / NaN.
        """
        users = [str(u) for u in np.atleast_1d(np.asarray(users, dtype=object))]
        return self._shape(self._native.recommend(users, k, exclude_seen),
                           len(users), k)

    def similar_items(self, items, k=10):
        """Nearest k items of each item id: ``(ids [n x k], scores [n x k])``."""
        items = [str(i) for i in np.atleast_1d(np.asarray(items, dtype=object))]
        return self._shape(self._native.similar_items(items, k), len(items), k)

    def encode_users(self, features):
        """Vectors ``float32 [n x d]`` of new users from raw feature dicts."""
        feats = [[(str(k), str(v)) for k, v in f.items()] for f in features]
        raw = self._native.encode_users(feats)
        return np.frombuffer(raw, dtype="<f4").reshape(len(feats), self._native.dim).copy()
