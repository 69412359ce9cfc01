"""sleepedge predict: TFLite Micro host reference on EDF recordings and on cached epochs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.deploy import predict as P
from host_tools.cli import main
from host_tools.errors import SleepEdgeError


@pytest.fixture(scope="module")
def int8_model(tiny_cache, tmp_path_factory):
    """A full-int8 edge CNN (untrained weights) calibrated on the tiny cache's epochs."""
    from host_tools.learn import compress, models
    from host_tools.data import prepare

    x, _, _, _ = prepare.load_epochs(tiny_cache)
    tflite = compress.convert_int8(models.build_edge_cnn(seed=3), compress.representative_epochs(x, n=64))
    folder = tmp_path_factory.mktemp("edge_int8")
    (folder / "model.tflite").write_bytes(tflite)
    return folder


def test_decide_dequantizes_like_the_device():
    raw = np.array([[-128, 100, 3, 100, -5], [127, -128, -128, -128, -128]], dtype=np.int8)
    stages, conf = P.decide(raw, 1 / 256, -128)
    assert stages.tolist() == [1, 0]  # ties go to the first maximum
    assert conf.dtype == np.float32
    assert conf.tolist() == [np.float32(228) / np.float32(256), np.float32(255) / np.float32(256)]


def test_tflm_agrees_with_tflite_reference_kernels(int8_model, tiny_cache):
    from host_tools.learn import compress
    from host_tools.data import prepare

    x, _, _, _ = prepare.load_epochs(tiny_cache)
    x = x[:: max(1, len(x) // 40)]
    raw, stages, conf = P.predict_epochs_int8(int8_model, x)
    assert raw.dtype == np.int8 and raw.shape == (len(x), C.N_CLASSES)
    host = compress.tflite_predict_int8((int8_model / "model.tflite").read_bytes(), x, "BUILTIN_REF")
    # TFLite's reference kernels are TFLM's near twin: rare 1-LSB requantization ties aside
    # (widened by softmax), the outputs are identical.
    same = np.all(raw == host, axis=1)
    assert same.mean() >= 0.95
    assert np.abs(raw.astype(int) - host.astype(int)).max() <= 8
    assert np.array_equal(stages, raw.argmax(1))
    assert np.all((conf > 0) & (conf <= 1))


def test_predict_cli_on_a_recording_matches_the_cache(int8_model, tiny_corpus, tiny_cache, tmp_path):
    """The CSV for a PSG equals the model run on prepare's cached epochs (same filter, same cut)."""
    from host_tools.data import prepare

    index = prepare.load_index(tiny_cache)
    night = index["nights"][0]
    psg = tiny_corpus / f"{night['id']}-PSG.edf"
    assert psg.is_file()
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(int8_model), "--in", str(psg), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0].keys()) == list(P.CSV_FIELDS)
    assert {r["recording"] for r in rows} == {night["id"]}
    assert [int(r["epoch"]) for r in rows] == list(range(len(rows)))
    assert all(int(r["onset_s"]) == 30 * int(r["epoch"]) for r in rows)
    assert {r["stage"] for r in rows} <= set(C.STAGES)

    cached = prepare.load_night(tiny_cache, night["id"])
    _, stages, conf = P.predict_epochs_int8(int8_model, cached["x_filt"])
    got = {int(r["epoch"]): r for r in rows}
    for k, e in enumerate(cached["epoch_index"]):
        assert got[int(e)]["stage"] == C.STAGES[int(stages[k])]
        assert float(got[int(e)]["confidence"]) == pytest.approx(float(conf[k]), abs=1e-6)


def test_predict_folder(int8_model, tiny_corpus, tmp_path):
    out = tmp_path / "all.csv"
    assert main(["predict", "--model", str(int8_model / "model.tflite"), "--in", str(tiny_corpus),
                 "--out", str(out)]) == 0
    recs = {r["recording"] for r in csv.DictReader(open(out))}
    assert recs == {p.name[: -len("-PSG.edf")] for p in tiny_corpus.glob("*-PSG.edf")}


def test_bad_inputs(int8_model, tiny_corpus, tmp_path, capsys):
    psg = sorted(tiny_corpus.glob("*-PSG.edf"))[0]
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--model", str(tmp_path / "nope"), "--in", str(psg)], "no such model"),
        (["--model", str(junk), "--in", str(psg)], "TFL3"),
        (["--model", str(int8_model), "--in", str(tmp_path / "missing-PSG.edf")], "no such file"),
        (["--model", str(int8_model), "--in", str(empty)], "no *-PSG.edf"),
        (["--model", str(int8_model), "--in", str(psg), "--channel", "C3-A2"], "C3-A2"),
    ]
    for args, message in cases:
        rc = main(["predict", *args, "--out", str(tmp_path / "x.csv")])
        err = capsys.readouterr().err
        assert rc == 2, args
        assert message in err and "Traceback" not in err, err
    with pytest.raises(SleepEdgeError, match="3000"):
        P.predict_epochs_int8(int8_model, np.zeros((2, 100), np.float32))


def test_float_model_is_rejected(tmp_path):
    """A float TFLite model is not what the device runs: refuse it with the reason."""
    import tensorflow as tf
    import tf_keras

    inp = tf_keras.Input((C.EPOCH_SAMPLES, 1))
    m = tf_keras.Model(inp, tf_keras.layers.Dense(C.N_CLASSES, activation="softmax")(tf_keras.layers.Flatten()(inp)))
    spec = tf.TensorSpec([1, C.EPOCH_SAMPLES, 1], tf.float32)
    fn = tf.function(lambda x: m(x)).get_concrete_function(spec)
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([fn], m).convert())
    with pytest.raises(SleepEdgeError, match="int8"):
        P.TflmModel.load(path)
