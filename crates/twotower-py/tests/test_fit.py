"""TwoTower(...).fit(frames): data frames in, the same run as the CLI's on
the files and config fit writes."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twotower
from conftest import SHARED, cli


@pytest.fixture(scope="module")
def beauty(ml100k_present):
    """A slice of Amazon Beauty: the first 3,000 users' interactions, with
    the items' attributes as lists (a multi-valued feature)."""
    d = SHARED / "amazon-beauty"
    inter = pd.read_csv(d / "interactions.csv", dtype={"user_id": str, "item_id": str})
    inter = inter[inter["user_id"].isin(inter["user_id"].unique()[:3000])]
    items = pd.read_csv(d / "items.csv", dtype=str, keep_default_na=False)
    items = items[items["item_id"].isin(set(inter["item_id"]))].reset_index(drop=True)
    items["attributes"] = [a.split("|") if a else [] for a in items["attributes"]]
    return inter.reset_index(drop=True), items


CONFIG = dict(train={"epochs": 2, "seed": 1, "batch_size": 128, "refit": False},
              model={"embedding_dim": 16, "hidden": [], "out_dim": 16},
              loss={"temperature": 0.1})


def test_fit_data_frames_equals_the_cli_on_what_fit_wrote(beauty, tmp_path):
    inter, items = beauty
    model = twotower.TwoTower(**CONFIG)
    run = model.fit(inter, items=items, out=tmp_path / "fit")
    assert model.run_ is run
    cfg = (tmp_path / "fit" / "data" / "config.toml").read_text()
    # the features were inferred from the columns
    assert "[features.attributes]" in cfg and 'kind = "multi_categorical"' in cfg
    assert 'timestamp = "timestamp"' in cfg
    m = run.metrics
    assert m["n_items"] == len(items) and m["n_users"] == 3000
    assert 0.0 < m["recall@50"] < 1.0
    # the CLI trained on the written files and config gives the same model
    cli("train", "--config", tmp_path / "fit" / "data" / "config.toml",
        "--out", tmp_path / "cli", "--quiet")
    assert (tmp_path / "fit" / "model.safetensors").read_bytes() == \
        (tmp_path / "cli" / "model.safetensors").read_bytes()
    cli_m = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert cli_m["recall@50"] == m["recall@50"]
    # and `twotower eval --run` re-reads the data fit stored
    out, _ = cli("eval", "--run", tmp_path / "fit", "--json")
    assert json.loads(out)["recall@50"] == m["recall@50"]


def test_config_toml_takes_data_frames(beauty):
    inter, items = beauty
    text = twotower.TwoTower(train={"epochs": 3}).config_toml(".", inter, items)
    assert "[features.attributes]" in text and "epochs = 3" in text


def test_fit_takes_dicts_of_arrays_and_is_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    users = rng.integers(0, 300, n)
    items = (rng.zipf(1.5, n) % 200).astype(np.int64)
    inter = {"user_id": users.astype(str), "item_id": items.astype(str),
             "timestamp": np.arange(n)}
    feats = {"item_id": np.arange(200).astype(str),
             "category": [f"c{i % 7}" for i in range(200)],
             "price": rng.uniform(1, 100, 200)}
    a = twotower.TwoTower(**CONFIG).fit(inter, items=feats, out=tmp_path / "a")
    b = twotower.TwoTower(**CONFIG).fit(inter, items=feats, out=tmp_path / "b")
    assert (Path(a.path) / "model.safetensors").read_bytes() == \
        (Path(b.path) / "model.safetensors").read_bytes()
    cfg = (tmp_path / "a" / "data" / "config.toml").read_text()
    assert "[features.price]" in cfg and 'kind = "bucketized"' in cfg
    assert "[features.category]" in cfg


def test_fit_refuses_bad_tables_before_writing(tmp_path, beauty):
    inter, items = beauty
    with pytest.raises(twotower.TwoTowerError, match=r"interactions: no column 'user_id'"):
        twotower.TwoTower().fit(inter.rename(columns={"user_id": "u"}), out=tmp_path / "x")
    with pytest.raises(twotower.TwoTowerError, match=r"items: no column 'item_id'"):
        twotower.TwoTower().fit(inter, items=items.rename(columns={"item_id": "i"}),
                                out=tmp_path / "x")
    with pytest.raises(twotower.TwoTowerError, match="different lengths"):
        twotower.TwoTower().fit({"user_id": ["1", "2"], "item_id": ["1"]}, out=tmp_path / "x")
    with pytest.raises(twotower.TwoTowerError, match="unknown section 'optimizer'"):
        twotower.TwoTower(optimizer={"lr": 1})
    assert not (tmp_path / "x").exists()


def test_fit_bad_config_value_names_the_key(tmp_path, beauty):
    inter, _ = beauty
    with pytest.raises(twotower.TwoTowerError, match="ssl.masking"):
        twotower.TwoTower(ssl={"enabled": True, "masking": "corelated"}).fit(
            inter, out=tmp_path / "x")


def test_load_with_a_grown_catalog_equals_the_cli_export(beauty, tmp_path):
    inter, items = beauty
    run = twotower.TwoTower(**CONFIG).fit(inter, items=items, out=tmp_path / "fit")
    # the catalog grew: two new items with known attributes, one with none
    table = pd.read_csv(tmp_path / "fit" / "data" / "items.csv", dtype=str,
                        keep_default_na=False)
    new = pd.DataFrame({"item_id": ["new-1", "new-2", "new-3"],
                        "attributes": [table["attributes"][0], table["attributes"][1], ""]})
    grown = pd.concat([table, new], ignore_index=True)
    grown.to_csv(tmp_path / "catalog.csv", index=False)
    g = twotower.load(run.path, catalog=tmp_path / "catalog.csv")
    assert g.n_new_items == 3 and run.n_new_items == 0
    ids, vecs = g.item_vectors()
    assert ids[-3:] == ["new-1", "new-2", "new-3"] and vecs.shape[0] == len(table) + 3
    # trained items keep their vectors bit for bit
    old_ids, old_vecs = run.item_vectors()
    pos = {i: n for n, i in enumerate(ids)}
    assert np.array_equal(vecs[[pos[i] for i in old_ids]], old_vecs)
    # and everything equals the CLI's export of the same catalog
    cli("export", "--run", run.path, "--out", tmp_path / "e", "--catalog", tmp_path / "catalog.csv")
    assert np.array_equal(np.load(tmp_path / "e" / "item_vectors.npy"), vecs)
    assert (tmp_path / "e" / "item_ids.txt").read_text().splitlines() == ids
    # new items are recommended from the grown catalog
    sim, _ = g.similar_items(["new-1"], k=5)
    assert "new-1" not in list(sim[0])
    with pytest.raises(twotower.TwoTowerError, match="catalog"):
        twotower.load(run.path, catalog=tmp_path / "nope.csv")
