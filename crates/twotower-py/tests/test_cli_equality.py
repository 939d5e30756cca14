"""A run trained from Python is the CLI's run, bit for bit, and its queries
answer as the CLI's commands do."""
import json

import numpy as np

from conftest import cli

# timings differ between any two runs; everything else must not
TIMING = {"train_seconds", "examples_per_second"}


def without_timing(m):
    return {k: v for k, v in m.items() if k not in TIMING}


def test_metrics_equal_the_cli_bit_for_bit(py_run, cli_run):
    cli_metrics = json.loads((cli_run / "metrics.json").read_text())
    assert without_timing(py_run.metrics) == without_timing(cli_metrics)
    # real numbers, EVALUATION.md's names, the baseline beside them
    m = py_run.metrics
    assert 0.2 < m["recall@50"] < 0.6, m["recall@50"]
    assert m["most_popular"]["recall@50"] < m["recall@50"]
    for k in ("ndcg@50", "head_recall@50", "tail_recall@50", "cold_recall@50", "coverage@50"):
        assert 0.0 <= m[k] <= 1.0
    # the model and the artifact are the same bytes
    for f in ("model.safetensors", "artifact.safetensors"):
        assert (py_run_path(py_run) / f).read_bytes() == (cli_run / f).read_bytes(), f


def py_run_path(run):
    from pathlib import Path

    return Path(run.path)


def test_vectors_equal_the_export(py_run, tmp_path):
    cli("export", "--run", py_run.path, "--out", tmp_path / "e")
    for side, (ids, vecs) in (("item", py_run.item_vectors()), ("user", py_run.user_vectors())):
        npy = np.load(tmp_path / "e" / f"{side}_vectors.npy")
        assert vecs.dtype == np.float32 and vecs.shape == npy.shape
        assert np.array_equal(vecs, npy), side
        assert ids == (tmp_path / "e" / f"{side}_ids.txt").read_text().splitlines()
    assert py_run.item_vectors()[1].shape == (1682, py_run.dim)
    assert py_run.user_vectors()[1].shape == (943, py_run.dim)
    # unit vectors: the towers' outputs are L2-normalized
    assert np.allclose(np.linalg.norm(py_run.item_vectors()[1], axis=1), 1.0, atol=1e-5)


def cli_recommend(run_path, user, k, *extra):
    out, _ = cli("recommend", "--run", run_path, "--user", user, "-k", k, *extra)
    rows = [line.split("\t") for line in out.splitlines()]
    header, rows = rows[0], rows[1:]
    return [r[header.index("item")] for r in rows], [float(r[header.index("score")]) for r in rows]


def test_recommend_equals_the_cli(py_run):
    users = ["1", "2", "300"]
    items, scores = py_run.recommend(users, k=10)
    assert items.shape == (3, 10) and scores.shape == (3, 10) and scores.dtype == np.float32
    for n, u in enumerate(users):
        ids, sc = cli_recommend(py_run.path, u, 10)
        assert list(items[n]) == ids
        assert np.allclose(scores[n], sc, atol=1e-4)
        assert all(scores[n][:-1] >= scores[n][1:])  # best first
    # seen items excluded by default, included on request, as the CLI's
    items_all, _ = py_run.recommend(["1"], k=10, exclude_seen=False)
    ids, _ = cli_recommend(py_run.path, "1", 10, "--include-seen")
    assert list(items_all[0]) == ids
    assert list(items_all[0]) != list(items[0])


def test_recommend_a_thousand_users_in_one_call(py_run):
    ids, _ = py_run.user_vectors()
    users = (ids * 2)[:1000]
    items, scores = py_run.recommend(users, k=5)
    assert items.shape == (1000, 5)
    assert not np.isnan(scores).any()
    # the same user twice gets the same answer
    assert list(items[0]) == list(items[943])


def test_recommend_a_new_user_from_features_equals_the_cli(py_run):
    items, scores = py_run.recommend(["u9999"], k=5, features=[{"gender": "F", "age": 30}])
    ids, sc = cli_recommend(py_run.path, "u9999", 5, "--feature", "gender=F", "--feature", "age=30")
    assert list(items[0]) == ids
    assert np.allclose(scores[0], sc, atol=1e-4)
    v = py_run.encode_users([{"gender": "F", "age": 30}, {"gender": "M"}])
    assert v.shape == (2, py_run.dim)
    _, vecs = py_run.item_vectors()
    # the encoded vector is the one recommend ranked with
    best = np.argsort(-(vecs @ v[0]), kind="stable")[:5]
    item_ids, _ = py_run.item_vectors()
    assert [item_ids[i] for i in best] == list(items[0])


def test_similar_items_equals_the_cli(py_run):
    items, scores = py_run.similar_items(["1", "50"], k=8)
    for n, it in enumerate(["1", "50"]):
        out, _ = cli("similar", "--run", py_run.path, "--item", it, "-k", 8)
        rows = [line.split("\t") for line in out.splitlines()]
        header, rows = rows[0], rows[1:]
        assert list(items[n]) == [r[header.index("item")] for r in rows]
        assert it not in list(items[n])


def test_load_serves_a_saved_run(py_run):
    import twotower

    again = twotower.load(py_run.path)
    a, sa = again.recommend(["7"], k=10)
    b, sb = py_run.recommend(["7"], k=10)
    assert list(a[0]) == list(b[0]) and np.array_equal(sa, sb)
    assert len(again.epochs) == 2 and again.epochs[0]["epoch"] == 1


def test_ann_search_equals_the_cli_and_reports_its_recall(py_run):
    import twotower

    ann = twotower.load(py_run.path, ann=True, ef=64)
    assert 0.9 <= ann.ann_recall <= 1.0 and py_run.ann_recall is None
    items, _ = ann.recommend(["1", "2"], k=10)
    for n, u in enumerate(["1", "2"]):
        ids, _ = cli_recommend(py_run.path, u, 10, "--ann", "--ef", 64)
        assert list(items[n]) == ids
    import pytest

    with pytest.raises(twotower.TwoTowerError, match="ef must be at least 1"):
        twotower.load(py_run.path, ann=True, ef=0)
