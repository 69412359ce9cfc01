"""host_tools.deploy.c_export: model_data.{c,h} hold exactly the .tflite, the macros match its
quantization, the C compiles (host and Cortex-M4), and se_model_native.c over the export gives
TFLM's outputs through the se_model.h API."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, have_arm_toolchain
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

_spec = importlib.util.spec_from_file_location(
    "engine_harness", REPO_ROOT / "firmware" / "tests" / "engine" / "harness.py")
H = sys.modules.get("engine_harness") or importlib.util.module_from_spec(_spec)
if "engine_harness" not in sys.modules:
    sys.modules["engine_harness"] = H
    _spec.loader.exec_module(H)

pytestmark = [pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host C compiler"),
              pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")]

CORE = REPO_ROOT / "firmware" / "core"
GEN = REPO_ROOT / "firmware" / "generated"


def _epoch_model(seed: int, n_out: int = C.N_CLASSES, length: int = C.EPOCH_SAMPLES) -> bytes:
    """A small model with the edge model's interface: (3000, 1) int8 in, 5 softmax int8 out."""
    H.quiet_tf()
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((length, 1))
    x = keras.layers.Conv1D(8, 7, strides=4, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling1D(3)(x)
    x = keras.layers.Conv1D(12, 5, strides=2, activation="relu")(x)
    x = keras.layers.AveragePooling1D(int(x.shape[1]))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(n_out)(x)
    x = keras.layers.Softmax()(x)
    return H.convert_int8(keras.Model(inp, x), (length, 1), seed, n_rep=8, amp=40.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, bytes]:
    from host_tools.deploy.c_export import export_model

    d = tmp_path_factory.mktemp("export")
    data = _epoch_model(3)
    tfl = d / "edge.tflite"
    tfl.write_bytes(data)
    out = d / "out"
    export_model(tfl, out, threshold=0.55, name="edge-test")
    return tfl, out, data


def _macros(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (SE_\w+) (.+)$", header, flags=re.M))


def test_model_data_holds_exactly_the_tflite_bytes(exported) -> None:
    _, out, data = exported
    src = (out / "model_data.c").read_text()
    m = re.search(r"g_se_model_data\[(\d+)\] = \{(.*?)\};", src, flags=re.S)
    assert m is not None
    body = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", m.group(2)))
    assert int(m.group(1)) == len(data) and body == data
    assert "_Alignas(16) const uint8_t g_se_model_data" in src


def test_header_macros_match_the_tflite(exported) -> None:
    from tflite_micro.python.tflite_micro import runtime

    _, out, data = exported
    mac = _macros((out / "model_data.h").read_text())
    interp = runtime.Interpreter.from_bytes(data)
    qi = interp.get_input_details(0)["quantization_parameters"]
    qo = interp.get_output_details(0)["quantization_parameters"]
    assert np.float32(mac["SE_MODEL_INPUT_SCALE"].rstrip("f")) == np.float32(qi["scales"][0])
    assert int(mac["SE_MODEL_INPUT_ZERO_POINT"].strip("()")) == int(qi["zero_points"][0])
    assert np.float32(mac["SE_MODEL_OUTPUT_SCALE"].rstrip("f")) == np.float32(1.0 / 256)
    assert int(mac["SE_MODEL_OUTPUT_ZERO_POINT"].strip("()")) == int(qo["zero_points"][0]) == -128
    sha = hashlib.sha256(data).hexdigest()
    assert mac["SE_MODEL_HASH"] == f'"{sha}"'
    assert int(mac["SE_MODEL_HASH_U32"].rstrip("u"), 16) == int.from_bytes(bytes.fromhex(sha)[:4], "big")
    assert np.float32(mac["SE_MODEL_CONFIDENCE_THRESHOLD"].rstrip("f")) == np.float32(0.55)
    assert int(mac["SE_MODEL_DATA_LEN"].rstrip("u")) == len(data)
    assert mac["SE_MODEL_INPUT_NORM"] == "0"  # off unless the model folder says so
    plan_mac = _macros((out / "model_plan.h").read_text())
    assert int(plan_mac["SE_PLAN_INPUT_BYTES"].rstrip("u")) == C.EPOCH_SAMPLES
    assert 0 < int(plan_mac["SE_PLAN_ARENA_BYTES"].rstrip("u")) <= 48 * 1024
    # conv 750x8x7 + conv 123x12x40 + dense 12x5, counted from the layer shapes
    assert int(plan_mac["SE_PLAN_MACS"].rstrip("u")) == 750 * 8 * 7 + 123 * 12 * 8 * 5 + 12 * 5


def _native_harness(out: Path, exe: Path, sanitize: bool) -> Path:
    sources = [H.HERE / "native_main.c", CORE / "se_model_native.c", out / "model_data.c",
               out / "model_plan.c", H.ENGINE_DIR / "se_engine.c"]
    cmd = ["gcc", *H.HOST_CFLAGS, *(H.SAN_FLAGS if sanitize else []), f"-I{CORE}", f"-I{GEN}",
           f"-I{H.ENGINE_DIR}", f"-I{out}", *map(str, sources), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def test_se_model_native_matches_tflm(exported, tmp_path: Path) -> None:
    """The se_model.h API over the export (built with ASan/UBSan) reproduces TFLM exactly."""
    _, out, data = exported
    exe = _native_harness(out, tmp_path / "native", sanitize=True)
    rng = np.random.default_rng(0)
    zp = int(_macros((out / "model_data.h").read_text())["SE_MODEL_INPUT_ZERO_POINT"].strip("()"))
    x = H.random_inputs(rng, 6, C.EPOCH_SAMPLES, zp)
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    proc = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                          check=True, capture_output=True, text=True)
    got = np.fromfile(tmp_path / "out.bin", dtype=np.int8).reshape(len(x), C.N_CLASSES)
    assert np.array_equal(got, H.tflm_run(data, x))
    info = dict(kv.split("=") for kv in proc.stdout.split())
    sha = hashlib.sha256(data).hexdigest()
    assert int(info["hash"], 16) == int(sha[:8], 16)
    assert int(info["in_zp"]) == zp and int(info["out_zp"]) == -128
    assert int(info["uninit_rc"]) != 0  # running before se_model_init fails


@pytest.mark.skipif(not have_arm_toolchain(), reason="needs arm-none-eabi-gcc")
def test_export_compiles_for_cortex_m4(exported, tmp_path: Path) -> None:
    _, out, _ = exported
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O2",
             "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{CORE}", f"-I{GEN}", f"-I{H.ENGINE_DIR}",
             f"-I{out}", "-c"]
    for src in [out / "model_data.c", out / "model_plan.c", CORE / "se_model_native.c",
                H.ENGINE_DIR / "se_engine.c"]:
        subprocess.run(["arm-none-eabi-gcc", *flags, str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                       check=True, capture_output=True, text=True)
    # the model bytes land 16-byte aligned in .rodata
    syms = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "model_data.o")], check=True,
                          capture_output=True, text=True).stdout
    assert "g_se_model_data" in syms


# --- bad inputs ----------------------------------------------------------------------------

def test_wrong_input_size_is_rejected(tmp_path: Path) -> None:
    from host_tools.deploy.c_export import export_model

    tfl = tmp_path / "short.tflite"
    tfl.write_bytes(_epoch_model(1, length=600))
    with pytest.raises(SleepEdgeError, match=r"short\.tflite: model input has 600 values.*3000"):
        export_model(tfl, tmp_path / "o", threshold=0.6, name="x")
    assert not (tmp_path / "o" / "model_data.c").exists()


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5, float("nan")])
def test_bad_threshold_is_rejected(exported, tmp_path: Path, threshold: float) -> None:
    from host_tools.deploy.c_export import export_model

    tfl, _, _ = exported
    with pytest.raises(SleepEdgeError, match="threshold"):
        export_model(tfl, tmp_path, threshold=threshold, name="x")


@pytest.mark.parametrize("name", ["", "has space", 'quo"te', "x" * 65])
def test_bad_name_is_rejected(exported, tmp_path: Path, name: str) -> None:
    from host_tools.deploy.c_export import export_model

    tfl, _, _ = exported
    with pytest.raises(SleepEdgeError, match="model name"):
        export_model(tfl, tmp_path, threshold=0.6, name=name)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    from host_tools.deploy.c_export import export_model

    with pytest.raises(SleepEdgeError, match="missing.tflite: cannot read"):
        export_model(tmp_path / "missing.tflite", tmp_path, threshold=0.6, name="x")
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(SleepEdgeError, match="corrupt.tflite"):
        export_model(bad, tmp_path, threshold=0.6, name="x")


def test_input_norm_switch_reaches_the_header(exported, tmp_path: Path) -> None:
    from host_tools.deploy.c_export import export_model

    tfl, _, _ = exported
    export_model(tfl, tmp_path, threshold=0.6, name="x", input_norm=True)
    assert _macros((tmp_path / "model_data.h").read_text())["SE_MODEL_INPUT_NORM"] == "1"
