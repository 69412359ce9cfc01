"""Fine-tuning curve (`sleepedge transfer finetune`) and distillation (`sleepedge transfer distil`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.learn import models as M
from host_tools.cli import main
from host_tools.errors import SleepEdgeError


@pytest.fixture(scope="module")
def source_dir(tiny_cache, tmp_path_factory):
    """An (untrained) source CNN saved with the tiny SC cache's split, as train_source would."""
    from host_tools.data.datasets import split_subjects
    from host_tools.data.prepare import load_index

    out = tmp_path_factory.mktemp("source")
    split = split_subjects(load_index(tiny_cache), 0)
    M.save_model(M.build_source_cnn(seed=0), out, {"filtered": True, "split": split})
    return out


def test_order_nights_spreads_over_subjects():
    from host_tools.learn.transfer import order_nights

    index = {"nights": [{"id": f"{s}N{n}", "subject": s, "night": n} for s in ("A", "B", "C", "T")
                        for n in (1, 2)]}
    order = order_nights(index, ["A", "B", "C"], seed=0)
    assert len(order) == 6 and len(set(order)) == 6
    assert all(o.endswith("N1") for o in order[:3]) and all(o.endswith("N2") for o in order[3:])
    assert not any(o.startswith("T") for o in order)
    assert order_nights(index, ["A", "B", "C"], seed=0) == order


def test_parse_ks():
    from host_tools.learn.transfer import parse_ks

    assert parse_ks("1,2,4,8") == (1, 2, 4, 8)
    for bad in ("", "0,1", "one"):
        with pytest.raises(SleepEdgeError, match="--k"):
            parse_ks(bad)


def test_freeze_lower_keeps_frozen_weights(tiny_st_cache):
    from host_tools.data.datasets import make_dataset
    from host_tools.data.prepare import load_epochs
    from host_tools.learn.transfer import freeze_lower

    model = M.build_source_cnn(seed=2)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    frozen = freeze_lower(model, 6)
    assert frozen == [f"conv{i}" for i in range(1, 7)]
    x, y, _, _ = load_epochs(tiny_st_cache, filtered=True)
    model.compile(optimizer=M.keras().optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(make_dataset(x, y, batch=16), epochs=1, steps_per_epoch=2, verbose=0)
    for layer in model.layers:
        for w0, w1 in zip(before[layer.name], layer.get_weights()):
            if layer.name in frozen:
                np.testing.assert_array_equal(w0, w1)
    assert not np.array_equal(before["conv7"][0], model.get_layer("conv7").get_weights()[0])
    with pytest.raises(SleepEdgeError, match="conv layers"):
        freeze_lower(model, 11)


def test_finetune_curve_on_target_cache(source_dir, tiny_st_cache, tmp_path):
    from host_tools.data.prepare import load_index
    from host_tools.learn.transfer import finetune_curve

    out = tmp_path / "transfer"
    rep = finetune_curve(source_dir, tiny_st_cache, out, ks=(1, 2, 99), steps=2, batch=16, verbose=0)
    saved = json.loads((out / "transfer.json").read_text())
    assert saved["finetune"] == rep["finetune"]
    assert (out / "transfer.png").stat().st_size > 1000
    assert [p["k"] for p in rep["finetune"]] == [1, 2] == [p["k"] for p in rep["scratch"]]
    assert rep["skipped"][0]["k"] == 99
    index = load_index(tiny_st_cache)
    subject_of = {n["id"]: n["subject"] for n in index["nights"]}
    for arm in ("finetune", "scratch"):
        for point in rep[arm]:
            assert len(point["nights"]) == point["k"]
            # Never a night of a held-out target subject.
            assert not {subject_of[i] for i in point["nights"]} & set(rep["test_subjects"])
            assert 0.0 <= point["mf1"] <= 1.0
    assert rep["finetune"][0]["frozen"] == [f"conv{i}" for i in range(1, 7)]
    assert rep["none"]["n"] == sum(n["n_epochs"] for n in index["nights"] if n["subject"] in rep["test_subjects"])


def test_soften_and_distillation_loss():
    import tensorflow as tf

    from host_tools.learn.distil import distillation_loss, soften

    p = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.2, 0.2, 0.2, 0.2, 0.2]], dtype=np.float32)
    np.testing.assert_allclose(soften(p, 1.0), p, rtol=1e-5)
    hot = soften(p, 4.0)
    np.testing.assert_allclose(hot.sum(1), 1.0, rtol=1e-6)
    assert hot[0, 0] < p[0, 0] and hot[0, 0] > hot[0, 1]  # flatter, same order
    with pytest.raises(SleepEdgeError):
        soften(p, 0.0)
    hard = np.eye(C.N_CLASSES, dtype=np.float32)[[0, 2]]
    y_true = tf.constant(np.concatenate([hard, soften(p, 2.0)], axis=1))
    y_pred = tf.constant(p)
    ce = -np.log(p[[0, 1], [0, 2]])
    np.testing.assert_allclose(distillation_loss(2.0, 1.0)(y_true, y_pred).numpy(), ce, rtol=1e-5)
    # Student equal to the teacher: the KL term vanishes, only alpha * CE remains.
    np.testing.assert_allclose(distillation_loss(2.0, 0.25)(y_true, y_pred).numpy(), 0.25 * ce, rtol=1e-4,
                               atol=1e-6)
    with pytest.raises(SleepEdgeError, match="alpha"):
        distillation_loss(2.0, 1.5)


def test_distil_writes_edge_models_and_comparison(source_dir, tiny_cache, tmp_path):
    from host_tools.learn.distil import distil

    out = tmp_path / "edge"
    rep = distil(source_dir, tiny_cache, out, passes=1, steps_per_pass=3, batch=16, verbose=0)
    meta = M.load_metadata(source_dir)
    assert rep["split"] == meta["split"]  # the teacher's held-out subjects stay held out
    assert rep["teacher"]["sha256"] == meta["sha256"]
    assert json.loads((out / "distil.json").read_text())["distilled"]["mf1"] == rep["distilled"]["mf1"]
    for folder in (out, out / "alone"):
        model = M.load_keras_model(folder)
        assert model.name == "edge_cnn"
        assert M.load_metadata(folder)["input_clip_uv"] == C.EDGE_INPUT_CLIP_UV
    assert rep["edge"]["within_budget"]
    assert rep["distilled"]["n"] == rep["alone"]["n"] > 0


def test_distil_rejects_a_foreign_cache(source_dir, tiny_st_cache, tmp_path, capsys):
    rc = main(["transfer", "distil", "--teacher", str(source_dir), "--cache", str(tiny_st_cache),
               "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "not in this cache" in err


def test_finetune_cli_missing_source(tiny_st_cache, tmp_path, capsys):
    rc = main(["transfer", "finetune", "--source", str(tmp_path / "nope"), "--cache", str(tiny_st_cache),
               "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "no such model file" in err
