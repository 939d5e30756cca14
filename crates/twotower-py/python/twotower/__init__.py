"""twotower from Python: train, evaluate, recommend and vectors, numpy out.

Two-tower retrieval models (in-batch softmax with the logQ correction,
self-supervised learning on the item tower, a user-history tower), trained
by the same Rust library as the ``twotower`` command line::

    import twotower
    run = twotower.train(config="configs/ml-100k.toml", out="runs/ml100k")
    run.metrics["recall@50"]
    ids, vecs = run.item_vectors()                    # list[str], float32 [n x d]
    items, scores = run.recommend(["1", "2"], k=10)   # [n_users x k]

or from data frames, without writing a config::

    model = twotower.TwoTower(train={"epochs": 5}, model={"embedding_dim": 32})
    run = model.fit(interactions_df, items=items_df, out="runs/fit")

Errors raise :class:`TwoTowerError` with the CLI's message (file, line and
column for bad data); Ctrl-C during training raises :class:`Interrupted` (a
subclass) after a checkpoint is saved (``resume=True`` continues). Progress:
one record per epoch, given to ``on_epoch`` or logged at INFO level on the
``"twotower"`` logger.
"""
import csv
import json
import logging
import math
import os

import numpy as np

from ._native import Interrupted, NativeRun, TwoTowerError, check_run_dir, train_run

__all__ = ["train", "load", "Run", "TwoTower", "TwoTowerError", "Interrupted"]

log = logging.getLogger("twotower")


def _value(v):
    """A config value as ``--set`` reads it (TOML)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, (np.integer, np.floating)):
        return _value(v.item())
    return str(v)


def _log_epoch(rec):
    val = rec.get("validation")
    extra = ""
    if isinstance(val, dict):
        # the headline validation metrics (the record has them all)
        shown = [k for k in ("recall@50", "ndcg@50", "tail_recall@50", "cold_recall@50")
                 if isinstance(val.get(k), (int, float))]
        extra = "; validation " + ", ".join(f"{k} {val[k]:.4f}" for k in shown) if shown else ""
    log.info(
        "%s epoch %s: loss %.4f (main %.4f, ssl %.4f) %.0f ex/s%s",
        rec.get("phase"), rec.get("epoch"), rec.get("loss", math.nan),
        rec.get("loss_main", math.nan), rec.get("loss_ssl", math.nan),
        rec.get("examples_per_second", math.nan), extra,
    )


def train(config=None, overrides=None, out="runs/latest", force=False,
          resume=False, verbose=False, on_epoch=None):
    """Train as ``twotower train --config CONFIG --set K=V ... --out OUT``.

    Parameters
    ----------
    config : path or None
        A TOML config (``configs/ml-100k.toml``); None = the built-in
        synthetic data.
    overrides : dict or list of str
        Config keys to override: ``{"loss.temperature": 0.2}`` or
        ``["loss.temperature=0.2"]``.
    out : path
        The run directory; a finished run there is refused unless ``force``.
    resume : bool
        Continue an interrupted run in ``out``.
    verbose : bool
        Print the CLI's progress to stderr.
    on_epoch : callable(dict) or None
        Called with each epoch's record (``phase``, ``epoch``, ``loss``,
        ``loss_main``, ``loss_ssl``, ``examples_per_second``, ``seconds``,
        ``validation``) as training writes it; None logs it on the
        ``"twotower"`` logger. An exception it raises stops training (a
        checkpoint is saved) and propagates.

    Returns the finished :class:`Run`. Raises :class:`TwoTowerError` (bad
    config, data errors naming file, line and column, an ``out`` that holds
    a run) or :class:`Interrupted` (Ctrl-C).
    """
    if isinstance(overrides, dict):
        sets = [f"{k}={_value(v)}" for k, v in overrides.items()]
    else:
        sets = list(overrides or [])
    cfg = None if config is None else os.fspath(config)
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"on_epoch must be callable, got {type(on_epoch).__name__}")
    if not os.fspath(out):
        raise TwoTowerError("out is empty: give the run directory")
    cb = on_epoch if on_epoch is not None else _log_epoch

    def hook(line):
        cb(json.loads(line))

    train_run(cfg, sets, os.fspath(out), force, resume, verbose, hook)
    return load(out)


def load(run_dir, catalog=None, ann=False, ef=128):
    """Load a saved run directory (as ``recommend``/``export`` do); it needs
    no training data.

    ``catalog``: an item table laid out like the config's ``[data.items]``
    (same columns and format), e.g. a catalog that grew after training:
    trained items keep their vectors, new ones are scored from their
    features (as ``--catalog``). ``ann=True``: search an HNSW index
    (usearch; the run's saved ``index.usearch`` when ``twotower index``
    wrote one and the catalog is the run's) with breadth ``ef``; its
    recall@10 against exact search is ``Run.ann_recall``.
    """
    return Run(run_dir, catalog=catalog, ann=ann, ef=ef)


def _vectors(t):
    ids, raw, n, d = t
    return list(ids), np.frombuffer(raw, dtype="<f4").reshape(n, d).copy()


def _ids(xs, what="users"):
    """A list of id strings from one id or a 1-D sequence of ids."""
    if isinstance(xs, (str, bytes, int, np.integer)):
        xs = [xs]
    elif hasattr(xs, "tolist") and getattr(xs, "ndim", 1) == 1:
        xs = xs.tolist()  # numpy arrays, pandas Series / Index
    elif not isinstance(xs, (list, tuple)):
        raise TypeError(f"{what} must be an id or a list / tuple / 1-D array of ids, "
                        f"got {type(xs).__name__}")
    out = []
    for x in xs:
        if x is None or isinstance(x, (list, tuple, dict, set, float, np.floating)):
            raise TypeError(f"{what}: {x!r} is not an id (ids are str or int)")
        out.append(x.decode() if isinstance(x, bytes) else str(x))
    return out


def _feature_dicts(features, what="features"):
    """``[[(name, value)]]`` from a list of ``{name: value}`` dicts."""
    if isinstance(features, dict) or not isinstance(features, (list, tuple)):
        raise TypeError(f"{what} must be a list of {{name: value}} dicts (one per user), "
                        f"got {type(features).__name__}")
    out = []
    for n, f in enumerate(features):
        if not isinstance(f, dict):
            raise TypeError(f"{what}[{n}] must be a {{name: value}} dict, got {type(f).__name__}")
        pairs = []
        for a, b in f.items():
            if isinstance(b, (list, tuple, set, dict, np.ndarray)) or b is None:
                raise TypeError(f"{what}[{n}][{a!r}]: one value (str or number) expected, "
                                f"got {b!r}")
            pairs.append((str(a), str(b)))
        out.append(pairs)
    return out


class Run:
    """A trained run directory, loaded for queries (no training data needed);
    see :func:`load`.

    Attributes: ``path`` (the directory), ``dim`` (vector dimension),
    ``ann_recall``, ``n_new_items``.
    """

    def __init__(self, run_dir, catalog=None, ann=False, ef=128):
        self.path = os.fspath(run_dir)
        cat = None if catalog is None else os.fspath(catalog)
        self._native = NativeRun(self.path, cat, bool(ann), int(ef))

    def __repr__(self):
        return f"twotower.Run({self.path!r})"

    @property
    def dim(self):
        """Dimension of the user and item vectors."""
        return self._native.dim

    @property
    def ann_recall(self):
        """HNSW recall@10 against exact search on up to 200 of the run's
        users (None for exact search)."""
        return self._native.ann_recall

    @property
    def n_new_items(self):
        """Catalog items the model never saw, scored from their features."""
        return self._native.n_new_items

    @property
    def metrics(self):
        """metrics.json: EVALUATION.md's names (``recall@50``, ``ndcg@50``,
        ``tail_recall@50``, ...), the most-popular baseline under
        ``"most_popular"``."""
        with open(os.path.join(self.path, "metrics.json")) as f:
            return json.load(f)

    @property
    def epochs(self):
        """The per-epoch records of ``epochs.jsonl`` (list of dicts)."""
        p = os.path.join(self.path, "epochs.jsonl")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(line) for line in f if line.strip()]

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

    def recommend(self, users, k=10, exclude_seen=True, features=None):
        """Top-k items for a batch of user ids, in one call (no Python loop).

        ``features``: optional list (one per user) of ``{name: value}`` dicts
        of raw user features, for users the model has not seen (as
        ``recommend --feature``). Known users' train items are excluded
        unless ``exclude_seen=False``.

        Returns ``(item_ids object [n x k], scores float32 [n x k])`` (cosine
        scores, best first); rows with fewer than k items are padded with
        None / NaN.
        """
        users = _ids(users, "users")
        feats = [] if features is None else _feature_dicts(features)
        return self._shape(self._native.recommend(users, k, exclude_seen, feats),
                           len(users), k)

    def similar_items(self, items, k=10):
        """Nearest k items (cosine) of each item id, itself excluded:
        ``(ids object [n x k], scores float32 [n x k])``."""
        items = _ids(items, "items")
        return self._shape(self._native.similar_items(items, k), len(items), k)

    def encode_users(self, features):
        """Vectors ``float32 [n x d]`` of new users from raw feature dicts
        (``[{"gender": "F", "age": 30}]``); features left out use the
        out-of-vocabulary embedding."""
        feats = _feature_dicts(features)
        raw = self._native.encode_users(feats)
        return np.frombuffer(raw, dtype="<f4").reshape(len(feats), self.dim).copy()


# --------------------------------------------------------------------------
# TwoTower(...).fit(frames): data frames in, a run out


def _columns(table, what):
    """``{name: list}`` of a pandas DataFrame or a dict of arrays / lists."""
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        cols = {str(c): list(table[c]) for c in table.columns}
    elif isinstance(table, dict):
        cols = {str(k): list(np.asarray(v, dtype=object)) if not isinstance(v, list) else v
                for k, v in table.items()}
    else:
        raise TwoTowerError(f"{what}: expected a pandas DataFrame or a dict of columns, "
                            f"got {type(table).__name__}")
    lens = {k: len(v) for k, v in cols.items()}
    if len(set(lens.values())) > 1:
        raise TwoTowerError(f"{what}: columns of different lengths {lens}")
    return cols


def _is_multi(v):
    return isinstance(v, (list, tuple, set, np.ndarray))


def _missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cell(v, sep):
    if _missing(v):
        return ""
    if _is_multi(v):
        parts = [str(x) for x in v]
        for p in parts:
            if sep in p:
                raise TwoTowerError(f"value {p!r} contains the separator {sep!r}")
        return sep.join(parts)
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _write_csv(path, cols, sep):
    names = list(cols)
    n = len(cols[names[0]]) if names else 0
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in range(n):
            w.writerow([_cell(cols[c][r], sep) for c in names])
    os.replace(tmp, path)


def _infer_feature(name, values, side, sep):
    """A feature config for a column: lists → multi_categorical, floats with
    more than 20 distinct values → bucketized at deciles, the rest
    categorical."""
    present = [v for v in values if not _missing(v)]
    if any(_is_multi(v) for v in present):
        return {"side": side, "kind": "multi_categorical", "column": name,
                "separator": sep}
    floats = [v for v in present if isinstance(v, (float, np.floating)) and math.isfinite(v)]
    if present and len(floats) == len(present) and len(set(floats)) > 20:
        qs = np.unique(np.quantile(np.asarray(floats, dtype=float),
                                   np.linspace(0.1, 0.9, 9)))
        return {"side": side, "kind": "bucketized", "column": name,
                "boundaries": [float(q) for q in qs]}
    return {"side": side, "kind": "categorical", "column": name}


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (np.integer, np.floating)):
        v = v.item()
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise TwoTowerError(f"config value {v} is not a finite number")
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def _key(k):
    k = str(k)
    if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k):
        return k
    return json.dumps(k)


def _toml(doc, prefix=""):
    """A minimal TOML writer for nested dicts of scalars and lists."""
    lines, tables = [], []
    for k, v in doc.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_toml_value(v)}")
    out = []
    if prefix and (lines or not tables):
        out.append(f"[{prefix}]")
    out.extend(lines)
    for k, v in tables:
        name = f"{prefix}.{_key(k)}" if prefix else _key(k)
        out.append("")
        out.append(_toml(v, name))
    return "\n".join(out)


class TwoTower:
    """A two-tower model configured like a TOML config, fitted on data frames.

    Keyword arguments are the config's sections as dicts: ``model``,
    ``loss``, ``ssl``, ``train``, ``eval``, ``split`` (``[data.split]``) and
    ``features`` (``{name: {side, kind, column, ...}}``); any key the
    config file takes (README "Config"). Without ``features``, ``fit``
    builds them from the columns: the user and item ids, every other column
    of ``items`` / ``users`` (list cells → multi-valued, floats with more
    than 20 distinct values → bucketized at deciles, the rest categorical).

        model = TwoTower(train={"epochs": 10, "seed": 1}, loss={"temperature": 0.1})
        run = model.fit(clicks, items=item_features, out="runs/fit")
        model.run_.metrics["recall@50"]
    """

    def __init__(self, **config):
        known = {"model", "loss", "ssl", "train", "eval", "split", "features"}
        for k, v in config.items():
            if k not in known:
                raise TwoTowerError(f"TwoTower: unknown section {k!r} (expected one of "
                                    f"{', '.join(sorted(known))})")
            if not isinstance(v, dict):
                raise TwoTowerError(f"TwoTower: section {k!r} must be a dict")
        self.config = config
        self.run_ = None

    def config_toml(self, data_dir=".", interactions=None, items=None, users=None,
                    user="user_id", item="item_id", timestamp="timestamp",
                    separator="|"):
        """The TOML config ``fit`` writes (data files in ``data_dir``); the
        tables (DataFrames or dicts of columns) only decide the features."""
        interactions, items, users = (
            None if t is None else _columns(t, name)
            for t, name in ((interactions, "interactions"), (items, "items"), (users, "users")))
        doc = {"data": {"path": os.fspath(data_dir)}}
        inter = {"file": "interactions.csv", "user": user, "item": item}
        if interactions is not None and timestamp in interactions:
            inter["timestamp"] = timestamp
        doc["data"]["interactions"] = inter
        if items is not None:
            doc["data"]["items"] = {"file": "items.csv", "key": item}
        if users is not None:
            doc["data"]["users"] = {"file": "users.csv", "key": user}
        if "split" in self.config:
            doc["data"]["split"] = dict(self.config["split"])
        feats = self.config.get("features")
        if feats is None:
            feats = {"user_id": {"side": "user", "kind": "categorical", "column": user},
                     "item_id": {"side": "item", "kind": "categorical", "column": item}}
            for table, key, side in ((items, item, "item"), (users, user, "user")):
                for name, values in (table or {}).items():
                    if name == key:
                        continue
                    fname = name if name not in feats else f"{side}_{name}"
                    feats[fname] = _infer_feature(name, values, side, separator)
        doc["features"] = feats
        for sec in ("model", "loss", "ssl", "train", "eval"):
            if sec in self.config:
                doc[sec] = self.config[sec]
        return _toml(doc) + "\n"

    def fit(self, interactions, items=None, users=None, out="runs/fit", *,
            user="user_id", item="item_id", timestamp=None,
            separator="|", force=False, verbose=False, on_epoch=None):
        """Train on in-memory tables and evaluate per EVALUATION.md.

        ``interactions`` (and optional ``items`` / ``users`` feature tables)
        are pandas DataFrames or dicts of columns (numpy arrays or lists;
        a multi-valued cell is a list). ``user`` / ``item`` / ``timestamp``
        name the columns (no timestamp column: row order is time). The
        tables are stored as CSV with the generated config under
        ``out/data`` (so ``twotower eval --run out`` can re-read them), then
        trained exactly as :func:`train`. Returns the :class:`Run`, also
        kept as ``self.run_``.
        """
        out = os.fspath(out)
        if not out:
            raise TwoTowerError("out is empty: give the run directory")
        if not isinstance(separator, str) or len(separator) != 1:
            raise TwoTowerError(f"separator must be one character, got {separator!r}")
        check_run_dir(out, False, force)
        icols = _columns(interactions, "interactions")
        if timestamp is None:
            timestamp = "timestamp"
        elif timestamp not in icols:
            raise TwoTowerError(f"interactions: no column {timestamp!r} (the timestamp; "
                                f"columns: {', '.join(icols)})")
        for c in (user, item):
            if c not in icols:
                raise TwoTowerError(f"interactions: no column {c!r} (columns: "
                                    f"{', '.join(icols)})")
        tables = {"interactions": icols}
        if items is not None:
            tables["items"] = _columns(items, "items")
            if item not in tables["items"]:
                raise TwoTowerError(f"items: no column {item!r} (the item key; columns: "
                                    f"{', '.join(tables['items'])})")
        if users is not None:
            tables["users"] = _columns(users, "users")
            if user not in tables["users"]:
                raise TwoTowerError(f"users: no column {user!r} (the user key; columns: "
                                    f"{', '.join(tables['users'])})")
        for name, key in (("interactions", user), ("interactions", item),
                          ("items", item), ("users", user)):
            col = tables.get(name, {}).get(key)
            for r, v in enumerate(col if col is not None else []):
                if _missing(v) or (isinstance(v, str) and not v):
                    raise TwoTowerError(f"{name}: row {r}, column {key!r}: missing id ({v!r})")
        data = os.path.join(out, "data")
        os.makedirs(data, exist_ok=True)
        for name, cols in tables.items():
            _write_csv(os.path.join(data, f"{name}.csv"), cols, separator)
        cfg = os.path.join(data, "config.toml")
        text = self.config_toml(".", icols, tables.get("items"), tables.get("users"),
                                user, item, timestamp, separator)
        with open(cfg + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(cfg + ".tmp", cfg)
        self.run_ = train(cfg, out=out, force=force, verbose=verbose, on_epoch=on_epoch)
        return self.run_
