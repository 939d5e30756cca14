"""Bad input raises TwoTowerError with the CLI's message; progress reaches a
callback or the logging module; Ctrl-C and a failing callback stop training
with a checkpoint that resume continues."""
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

import twotower
from conftest import ML100K_CONFIG, SHORT, cli


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(twotower.TwoTowerError, match="nope.toml"):
        twotower.train(config=tmp_path / "nope.toml", out=tmp_path / "r")


def test_bad_override_names_the_flag(tmp_path):
    with pytest.raises(twotower.TwoTowerError, match=r"loss.temperature"):
        twotower.train(config=ML100K_CONFIG, overrides={"loss.temperature": -1},
                       out=tmp_path / "r")


def test_bad_row_names_file_line_and_column_as_the_cli(tmp_path):
    (tmp_path / "i.csv").write_text("user,item,ts\n1,10,1\n1,11,2\n2,10,x\n")
    (tmp_path / "c.toml").write_text(
        '[data]\npath = "."\n[data.interactions]\nfile = "i.csv"\nuser = "user"\n'
        'item = "item"\ntimestamp = "ts"\n')
    with pytest.raises(twotower.TwoTowerError) as e:
        twotower.train(config=tmp_path / "c.toml", out=tmp_path / "r")
    msg = str(e.value)
    assert "i.csv:4" in msg and "column `ts`" in msg and "\"x\"" in msg, msg
    _, err = cli("train", "--config", tmp_path / "c.toml", "--out", tmp_path / "r2",
                 check=False)
    assert msg in err, (msg, err)


def test_finished_run_is_not_overwritten(py_run):
    with pytest.raises(twotower.TwoTowerError, match="already holds a finished run"):
        twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=py_run.path)


def test_load_of_a_missing_run(tmp_path):
    with pytest.raises(twotower.TwoTowerError, match="run.json"):
        twotower.load(tmp_path)


def test_unknown_item_and_k_zero(py_run):
    with pytest.raises(twotower.TwoTowerError, match="not in the catalog"):
        py_run.similar_items(["no-such-item"], k=3)
    with pytest.raises(twotower.TwoTowerError, match="k must be at least 1"):
        py_run.recommend(["1"], k=0)


def test_progress_callback_and_logging(tmp_path, caplog):
    recs = []
    twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=tmp_path / "a",
                   on_epoch=recs.append)
    assert [r["epoch"] for r in recs] == [1, 2]
    assert all(r["loss"] > 0 and r["examples_per_second"] > 0 for r in recs)
    with caplog.at_level(logging.INFO, logger="twotower"):
        twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=tmp_path / "b")
    lines = [r.getMessage() for r in caplog.records if r.name == "twotower"]
    assert len(lines) == 2 and "epoch 1" in lines[0] and "loss" in lines[0], lines


def test_failing_callback_stops_with_a_checkpoint_and_resume_finishes(tmp_path, py_run):
    def stop(rec):
        raise RuntimeError(f"stop at {rec['epoch']}")

    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="stop at 1"):
        twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=out, on_epoch=stop)
    assert (out / "checkpoint.json").exists() and not (out / "run.json").exists()
    with pytest.raises(twotower.TwoTowerError, match="already holds a run"):
        twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=out)
    run = twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=out, resume=True)
    # bit-identical resume: the uninterrupted run's model
    assert (out / "model.safetensors").read_bytes() == \
        (Path(py_run.path) / "model.safetensors").read_bytes()
    assert run.metrics["recall@50"] == py_run.metrics["recall@50"]


def test_ctrl_c_raises_interrupted_after_a_checkpoint(tmp_path):
    out = tmp_path / "r"
    started = threading.Event()
    done = threading.Event()

    def on_epoch(rec):
        started.set()

    # SIGINT as a terminal's Ctrl-C delivers it, during training: sent
    # 50 ms after the first epoch, then again every second until training
    # returns (one CI run of 2026-12-08 trained all 200 epochs without
    # seeing the first one; not reproduced since). The handler is Python's
    # default one (KeyboardInterrupt) while training runs, and ignores a
    # signal that lands after it returned.
    def handler(signum, frame):
        if not done.is_set():
            raise KeyboardInterrupt

    def ctrl_c():
        started.wait()
        delay = 0.05
        while not done.wait(delay):
            os.kill(os.getpid(), signal.SIGINT)
            delay = 1.0

    old = signal.signal(signal.SIGINT, handler)
    sender = threading.Thread(target=ctrl_c, daemon=True)
    sender.start()
    try:
        with pytest.raises(twotower.Interrupted, match="checkpoint saved"):
            twotower.train(config=ML100K_CONFIG,
                           overrides={**SHORT, "train.epochs": 200, "train.patience": 200},
                           out=out, on_epoch=on_epoch)
    finally:
        done.set()
        started.set()
        sender.join()
        signal.signal(signal.SIGINT, old)
    assert (out / "checkpoint.json").exists()
    assert issubclass(twotower.Interrupted, twotower.TwoTowerError)


def test_query_arguments_are_checked(py_run):
    # k past the catalog would allocate n x k rows: refused, not an abort
    with pytest.raises(twotower.TwoTowerError, match=r"k = 1000000000 is larger than the catalog \(1682 items\)"):
        py_run.recommend(["1"], k=10**9)
    with pytest.raises(twotower.TwoTowerError, match="larger than the catalog"):
        py_run.similar_items(["1"], k=2**40)
    assert py_run.recommend(["1"], k=1682)[0].shape == (1, 1682)
    for bad in (None, {"1", "2"}, (u for u in ["1"]), [["1"]], [None]):
        with pytest.raises(TypeError):
            py_run.recommend(bad, k=3)
    import numpy as np
    assert py_run.recommend(np.array([1, 2]), k=3)[0].shape == (2, 3)
    assert py_run.recommend("1", k=3)[0].shape == (1, 3)
    for bad in ({"gender": "F"}, ["gender=F"], [{"gender": ["F", "M"]}]):
        with pytest.raises(TypeError):
            py_run.recommend(["u1"], k=3, features=bad)
    with pytest.raises(TypeError):
        py_run.encode_users({"gender": "F"})
    with pytest.raises(twotower.TwoTowerError, match=r"not in the data; give its features with features=\[\{NAME: VALUE\}"):
        py_run.recommend(["nobody"], k=3)
    with pytest.raises(twotower.TwoTowerError, match=r"features\[1\] is empty"):
        py_run.encode_users([{"gender": "F"}, {}])


def test_config_values_refused_before_training(tmp_path):
    cases = {
        "train.monitor": ("recall@20", "train.monitor"),
        "train.threads": (100000, "train.threads"),
        "eval.ks": ([2**62], "eval.ks"),
        "features.gender.hash_buckets": (2**32 - 1, "hash_buckets"),
    }
    for key, (value, named) in cases.items():
        with pytest.raises(twotower.TwoTowerError, match=named):
            twotower.train(config=ML100K_CONFIG, overrides={**SHORT, key: value},
                           out=tmp_path / key)
        assert not (tmp_path / key / "run.json").exists()


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path):
    # sizes no machine holds (a test must not depend on this one's memory)
    for key, value in (("model.embedding_dim", 10**9), ("model.hidden", [10**9]),
                       ("features.gender.dim", 10**9)):
        with pytest.raises(twotower.TwoTowerError, match="does not fit in memory"):
            twotower.train(config=ML100K_CONFIG, overrides={**SHORT, key: value},
                           out=tmp_path / key)


def test_fit_and_train_arguments_are_checked(tmp_path):
    inter = {"user_id": ["1", "2", None], "item_id": ["a", "b", "c"]}
    with pytest.raises(twotower.TwoTowerError, match=r"interactions: row 2, column 'user_id': missing id"):
        twotower.TwoTower().fit(inter, out=tmp_path / "a")
    inter = {"user_id": ["1", "2"], "item_id": ["a", "b"]}
    with pytest.raises(twotower.TwoTowerError, match=r"no column 'ts' \(the timestamp"):
        twotower.TwoTower().fit(inter, out=tmp_path / "b", timestamp="ts")
    with pytest.raises(twotower.TwoTowerError, match="separator must be one character"):
        twotower.TwoTower().fit(inter, out=tmp_path / "c", separator="")
    with pytest.raises(twotower.TwoTowerError, match="out is empty"):
        twotower.TwoTower().fit(inter, out="")
    with pytest.raises(TypeError, match="on_epoch must be callable"):
        twotower.train(config=ML100K_CONFIG, overrides=SHORT, out=tmp_path / "d", on_epoch=5)
    assert not any((tmp_path / d).exists() for d in "abcd")
