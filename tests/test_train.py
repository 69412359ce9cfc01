"""Input pipelines (splits, class weights, tf.data) and `sleepedge train source` on the tiny cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.data import datasets as D
from host_tools.cli import main
from host_tools.errors import SleepEdgeError


def test_split_subjects_is_disjoint_and_complete():
    index = {"folds": [["a", "b"], ["c"], ["d", "e"], ["f"]], "nights": []}
    s = D.split_subjects(index, 1)
    assert s["test"] == ["c"] and s["val"] == ["d", "e"] and s["train"] == ["a", "b", "f"]
    s = D.split_subjects(index, 3)  # validation wraps around to fold 0
    assert s["val"] == ["a", "b"]
    assert sorted(s["train"] + s["val"] + s["test"]) == list("abcdef")
    with pytest.raises(SleepEdgeError, match="out of range"):
        D.split_subjects(index, 4)
    with pytest.raises(SleepEdgeError, match="at least 3"):
        D.split_subjects({"folds": [["a"], ["b"]]}, 0)


def test_class_weights_balance_present_classes():
    y = np.array([0] * 50 + [1] * 5 + [2] * 100 + [4] * 20)
    w = D.class_weights(y)
    assert w[3] == 0.0  # absent class
    mass = np.bincount(y, minlength=C.N_CLASSES) * w
    np.testing.assert_allclose(mass[[0, 1, 2, 4]], mass[0], rtol=1e-5)
    capped = D.class_weights(np.array([0] * 1000 + [1]), max_weight=3.0)
    assert capped[1] == 3.0


def test_subsample_wake_keeps_fraction_and_everything_else():
    y = np.array([0] * 100 + [2] * 30 + [0] * 100)
    idx = D.subsample_wake(y, 0.25, seed=1)
    assert (y[idx] == 2).sum() == 30
    assert (y[idx] == 0).sum() == 50
    assert np.all(np.diff(idx) > 0)
    with pytest.raises(SleepEdgeError, match="wake-keep"):
        D.subsample_wake(y, 0.0)


def test_make_dataset_shuffles_whole_passes():
    n, batch = 40, 8
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, C.EPOCH_SAMPLES), np.float32)
    y = np.arange(n)
    w = np.linspace(0.5, 1.5, n).astype(np.float32)
    it = iter(D.make_dataset(x, y, w, batch=batch, seed=3))
    seen = []
    for _ in range(n // batch):
        xb, yb, wb = (t.numpy() for t in next(it))
        assert xb.shape == (batch, C.EPOCH_SAMPLES, 1)
        np.testing.assert_array_equal(xb[:, 0, 0], yb)  # rows stay paired with labels and weights
        np.testing.assert_allclose(wb, w[yb])
        seen += yb.tolist()
    assert sorted(seen) == list(range(n)) and seen != list(range(n))
    with pytest.raises(SleepEdgeError, match="shape"):
        D.prepare_inputs(np.zeros((3, 100)))


@pytest.fixture(scope="module")
def trained_source(tiny_cache, tmp_path_factory):
    from host_tools.learn.train import train_source

    out = tmp_path_factory.mktemp("source")
    metrics = train_source(tiny_cache, out, passes=2, steps_per_pass=2, batch=16, patience=1,
                           val_max=200, verbose=0)
    return out, metrics


def test_train_source_writes_model_and_honest_metrics(tiny_cache, trained_source):
    from host_tools.learn.models import load_cloud_model
    from host_tools.data.prepare import load_epochs, load_index
    from host_tools.learn.train import score

    out, metrics = trained_source
    for name in ("model.keras", "model.json", "metrics.json", "history.json"):
        assert (out / name).is_file(), name
    split = metrics["split"]
    assert not set(split["test"]) & set(split["train"] + split["val"])
    assert not set(split["val"]) & set(split["train"])
    assert json.loads((out / "metrics.json").read_text())["test"] == metrics["test"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == metrics["passes_run"] == len(history["val_mf1"])
    # The saved model is the evaluated one (best pass restored before evaluation and saving):
    # re-scoring the test subjects from the file reproduces the reported metrics.
    index = load_index(tiny_cache)
    ids = [n["id"] for n in index["nights"] if n["subject"] in split["test"]]
    x, y, subjects, _ = load_epochs(tiny_cache, ids, filtered=True)
    assert set(subjects) == set(split["test"])
    cloud = load_cloud_model(out)
    again = score(y, cloud.predict_proba(x).argmax(1))
    assert again["n"] == metrics["test"]["n"] == len(y)
    assert again["acc"] == pytest.approx(metrics["test"]["acc"])
    assert cloud.metadata["filtered"] is True and cloud.metadata["split"] == split


def test_score_matches_definitions():
    from host_tools.learn.train import score

    y = np.array([0, 0, 1, 2, 2, 2, 3, 4])
    p = np.array([0, 1, 1, 2, 2, 0, 3, 4])
    s = score(y, p)
    assert s["acc"] == pytest.approx(6 / 8)
    assert s["per_class_f1"]["W"] == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    assert s["per_class_f1"]["N1"] == pytest.approx(2 / 3)
    assert np.array(s["confusion"]).sum() == 8 and np.trace(s["confusion"]) == 6
    with pytest.raises(SleepEdgeError):
        score(np.array([]), np.array([]))


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "multiworker"], "TF_CONFIG"),
    (["--passes", "0"], "passes"),
    (["--wake-keep", "1.5"], "wake-keep"),
])
def test_train_cli_bad_arguments(tiny_cache, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    rc = main(["train", "source", "--cache", str(tiny_cache), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_train_cli_not_a_cache(tmp_path, capsys):
    rc = main(["train", "source", "--cache", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a prepare cache" in err
