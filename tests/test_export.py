"""sleepedge export: files for the firmware, TFLM vs TFLite check, reference vectors, bad inputs."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from host_tools.deploy import codegen
from host_tools import constants as C
from host_tools.cli import main
from host_tools.errors import SleepEdgeError

HAVE_C_EXPORT = importlib.util.find_spec("host_tools.deploy.c_export") is not None


@pytest.fixture
def c_export_calls(monkeypatch):
    """The real c_export when it exists; until the engine lands, a recorder standing in for it
    (export must still call it with the model, the folder and the threshold)."""
    calls: list[dict] = []
    if HAVE_C_EXPORT:
        return None
    stub = types.ModuleType("host_tools.deploy.c_export")

    def export_model(tflite_path, out_dir, *, threshold, name, input_norm=False):
        calls.append({"tflite": tflite_path, "out": out_dir, "threshold": threshold, "name": name})

    stub.export_model = export_model
    monkeypatch.setitem(sys.modules, "host_tools.deploy.c_export", stub)
    import host_tools

    monkeypatch.setattr(host_tools, "c_export", stub, raising=False)
    return calls


@pytest.fixture(scope="module")
def int8_tflite(tiny_cache, tmp_path_factory):
    from host_tools.learn import compress, models
    from host_tools.data import prepare

    x, _, _, _ = prepare.load_epochs(tiny_cache)
    path = tmp_path_factory.mktemp("int8") / "edge.tflite"
    path.write_bytes(compress.convert_int8(models.build_edge_cnn(seed=5), compress.representative_epochs(x, n=64)))
    return path


def test_export_takes_input_norm_from_compress_json(int8_tflite, tmp_path, c_export_calls):
    from host_tools.data.normalize import default_input_norm
    from host_tools.deploy.predict import TflmModel

    src = tmp_path / "train"
    src.mkdir()
    (src / "model.tflite").write_bytes(int8_tflite.read_bytes())
    (src / "compress.json").write_text(json.dumps({"input_norm": {"window": C.NORM_WINDOW_EPOCHS}}))
    out = tmp_path / "edge"
    assert main(["export", "--tflite", str(src / "model.tflite"), "--out", str(out), "--n-check", "2",
                 "--header", str(tmp_path / "h.h")]) == 0
    assert json.loads((out / "export.json").read_text())["input_norm"] == default_input_norm()
    assert TflmModel.load(out).input_norm == default_input_norm()  # predict follows the folder
    if c_export_calls is None:
        assert "#define SE_MODEL_INPUT_NORM 1" in (out / "model_data.h").read_text()
    assert main(["export", "--tflite", str(src / "model.tflite"), "--out", str(out), "--n-check", "2",
                 "--header", str(tmp_path / "h.h"), "--input-norm", "off"]) == 0
    assert TflmModel.load(out).input_norm is None


def test_export_end_to_end(int8_tflite, tiny_cache, tmp_path, c_export_calls, capsys):
    from host_tools.deploy.predict import TflmModel
    from host_tools.data.filters import quantize_model_input

    out = tmp_path / "edge"
    header = tmp_path / "sleepedge_constants.h"
    rc = main(["export", "--tflite", str(int8_tflite), "--out", str(out), "--threshold", "0.55",
               "--cache", str(tiny_cache), "--n-check", "60", "--header", str(header)])
    assert rc == 0
    assert "bit-exact" in capsys.readouterr().out
    assert (out / "model.tflite").read_bytes() == int8_tflite.read_bytes()
    assert header.read_text() == codegen.constants_header()
    if c_export_calls is None:
        text = (out / "model_data.h").read_text()
        assert f"SE_MODEL_CONFIDENCE_THRESHOLD {codegen.c_float(0.55)}" in text
        assert (out / "model_data.c").is_file() and (out / "model_plan.c").is_file()
        figures = json.loads((out / "export.json").read_text())["c_export"]
        assert figures["arena_bytes"] > 0 and figures["macs"] > 0
    else:
        assert c_export_calls == [{"tflite": out / "model.tflite", "out": out, "threshold": 0.55, "name": "edge"}]

    report = json.loads((out / "export.json").read_text())
    a = report["tflm_vs_tflite"]
    assert a["epochs"] == 60 and "held-out" in a["epochs_from"]
    # TFLite's reference kernels are TFLM's near twin (rare 1-LSB rounding ties at FULLY_CONNECTED
    # can differ); the XNNPACK default is reported beside them.
    assert a["bit_exact_fraction"] >= 0.9 and a["argmax_agreement"] >= 0.95
    assert a["tflite_kernels"].startswith("reference") and "XNNPACK" in a["default_xnnpack"]["tflite_kernels"]
    assert report["threshold"] == 0.55
    assert report["input_norm"] is None  # no compress.json saying otherwise: plain input

    ref = np.load(out / "reference_vectors.npz")
    assert ref["input_int8"].dtype == np.int8 and ref["output_int8"].dtype == np.int8
    assert ref["input_int8"].shape == (8, C.EPOCH_SAMPLES) and ref["output_int8"].shape == (8, C.N_CLASSES)
    # Inputs are the device's quantization of the stored filtered epochs ...
    np.testing.assert_array_equal(
        ref["input_int8"], quantize_model_input(ref["x_filt"], float(ref["input_scale"]), int(ref["input_zero_point"])))
    # ... and outputs are what a fresh TFLM interpreter computes from them.
    tflm = TflmModel.load(out)
    np.testing.assert_array_equal(tflm.run_int8(ref["input_int8"]), ref["output_int8"])
    assert ref["stage"].tolist() == ref["output_int8"].argmax(1).tolist()


def test_export_without_cache_uses_filtered_noise(int8_tflite, tmp_path, c_export_calls):
    from host_tools.deploy.export import export

    r = export(int8_tflite, tmp_path / "e", threshold=0.7, n_check=5, header=tmp_path / "h.h")
    assert r["tflm_vs_tflite"]["epochs"] == 5 and "noise" in r["tflm_vs_tflite"]["epochs_from"]


def test_bad_inputs(int8_tflite, tmp_path, c_export_calls, capsys):
    from host_tools.deploy.export import export

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"hello world, not a flatbuffer")
    with pytest.raises(SleepEdgeError, match="no such"):
        export(tmp_path / "missing.tflite", tmp_path / "o", header=tmp_path / "h.h")
    with pytest.raises(SleepEdgeError, match="TFL3"):
        export(junk, tmp_path / "o", header=tmp_path / "h.h")
    rc = main(["export", "--tflite", str(int8_tflite), "--out", str(tmp_path / "o"), "--threshold", "1.5",
               "--header", str(tmp_path / "h.h")])
    err = capsys.readouterr().err
    assert rc == 2 and "threshold" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "model.tflite").exists()
    with pytest.raises(SleepEdgeError, match="never escalates"):
        export(int8_tflite, tmp_path / "o", threshold=0.0, header=tmp_path / "h.h")
