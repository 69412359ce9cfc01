"""Helpers shared by tests/test_engine.py and measure_qemu.py.

Random 1-D Keras models -> full-int8 .tflite (TFLite converter, representative dataset), the
real TFLM interpreter as ground truth, and builders for the host (gcc) and Cortex-M4 (QEMU)
engine harnesses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]
ENGINE_DIR = REPO / "firmware" / "core" / "engine"
HERE = Path(__file__).resolve().parent
HOST_CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion",
               "-Wno-sign-conversion"]
SAN_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def quiet_tf() -> None:
    """Silence TensorFlow's start-up chatter before it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def convert_int8(model: Any, in_shape: tuple[int, ...], seed: int, n_rep: int = 16,
                 amp: float = 1.0) -> bytes:
    """Full-int8 TFLite conversion with a random representative dataset."""
    quiet_tf()
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def rep() -> Any:
        for _ in range(n_rep):
            yield [rng.normal(0.0, amp, (1, *in_shape)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def tflm_run(model_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run int8 inputs (N, ...) through the real TFLM interpreter; returns (N, out_size)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model_bytes)
    shape = tuple(interp.get_input_details(0)["shape"])
    outs = []
    for x in inputs:
        interp.set_input(x.reshape(shape).astype(np.int8), 0)
        interp.invoke()
        outs.append(np.asarray(interp.get_output(0)).reshape(-1).copy())
    return np.stack(outs).astype(np.int8)


def random_model(seed: int, length: int | None = None) -> tuple[Any, tuple[int, ...]]:
    """A random small 1-D model drawn from the operators the engine supports.

    Each seed picks input length and channels, then a chain of blocks with random kernel sizes,
    strides, padding, channel counts, activations, pool sizes; some seeds add a residual ADD or a
    depthwise block. Always ends with Dense (or not) and sometimes Softmax.
    """
    quiet_tf()
    import tf_keras as keras

    rng = np.random.default_rng(seed)
    L = int(length or rng.integers(16, 120))
    cin = int(rng.choice([1, 1, 2, 3, 4, 8]))
    keras.utils.set_random_seed(seed)
    inp = keras.Input((L, cin))
    x = inp
    acts = [None, "relu", "relu6"]
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["conv", "conv", "dw", "pool", "add"])
        w = int(x.shape[1])
        if kind == "conv":
            k = int(rng.integers(1, 10))
            s = int(rng.choice([1, 1, 2, 3]))
            pad = str(rng.choice(["same", "valid"]))
            if pad == "valid" and w < k:
                pad = "same"
            x = keras.layers.Conv1D(int(rng.choice([1, 3, 4, 5, 8, 16, 19])), k, strides=s,
                                    padding=pad, activation=acts[int(rng.integers(0, 3))],
                                    use_bias=bool(rng.random() < 0.85))(x)
        elif kind == "dw":
            k = int(rng.integers(1, 8))
            pad = str(rng.choice(["same", "valid"]))
            if pad == "valid" and w < k:
                pad = "same"
            x = keras.layers.DepthwiseConv1D(k, strides=int(rng.choice([1, 2])), padding=pad,
                                             depth_multiplier=int(rng.choice([1, 2, 3])),
                                             activation=acts[int(rng.integers(0, 3))])(x)
        elif kind == "pool":
            ps = int(rng.integers(2, 6))
            st = int(rng.choice([1, 2, 3])) if rng.random() < 0.5 else None
            pad = str(rng.choice(["same", "same", "valid"]))
            if pad == "valid" and w < ps:
                pad = "same"
            layer = keras.layers.MaxPooling1D if rng.random() < 0.5 else keras.layers.AveragePooling1D
            x = layer(ps, strides=st, padding=pad)(x)
        else:  # residual block: conv branch (same shape) + identity
            c = int(x.shape[-1])
            y = keras.layers.Conv1D(c, int(rng.integers(1, 6)), padding="same",
                                    activation=acts[int(rng.integers(0, 3))])(x)
            x = keras.layers.Add()([x, y])
    if rng.random() < 0.7:
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(int(rng.integers(2, 12)), activation=acts[int(rng.integers(0, 3))])(x)
        if rng.random() < 0.7:
            x = keras.layers.Dense(5)(x)
            x = keras.layers.Softmax()(x)
    model = keras.Model(inp, x)
    # Randomise weights and biases beyond Glorot so requantization sees varied scales.
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            scale = float(rng.choice([0.3, 1.0, 3.0]))
            layer.set_weights([w_ * scale + rng.normal(0, 0.05, w_.shape).astype(w_.dtype) for w_ in ws])
    return model, (L, cin)


def edge_like_model(seed: int = 0) -> tuple[Any, tuple[int, ...]]:
    """A model shaped like the SleepEdge edge model: (3000, 1) -> conv stack -> softmax 5."""
    quiet_tf()
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((3000, 1))
    x = keras.layers.Conv1D(16, 7, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling1D(int(x.shape[1]))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    x = keras.layers.Softmax()(x)
    return keras.Model(inp, x), (3000, 1)


def compile_host(plan_dir: Path, out: Path, *, sanitize: bool = False,
                 extra_sources: tuple[Path, ...] = (), main: Path | None = None,
                 defines: tuple[str, ...] = ()) -> Path:
    """gcc the host harness against the plan in ``plan_dir``; returns the executable."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no host C compiler")
    cmd = [cc, *HOST_CFLAGS, *(SAN_FLAGS if sanitize else []), *[f"-D{d}" for d in defines],
           f"-I{ENGINE_DIR}", f"-I{plan_dir}", f"-I{REPO / 'firmware' / 'core'}",
           f"-I{REPO / 'firmware' / 'generated'}",
           str(main or HERE / "host_main.c"), str(ENGINE_DIR / "se_engine.c"),
           str(plan_dir / "model_plan.c"), *map(str, extra_sources), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def run_host(exe: Path, inputs: np.ndarray, out_bytes: int, workdir: Path) -> np.ndarray:
    """Run the host harness on int8 inputs (N, in_bytes); returns (N, out_bytes) int8."""
    fin, fout = workdir / "in.bin", workdir / "out.bin"
    inputs.astype(np.int8).tofile(fin)
    subprocess.run([str(exe), str(fin), str(fout)], check=True, capture_output=True, text=True,
                   timeout=120)
    return np.fromfile(fout, dtype=np.int8).reshape(len(inputs), out_bytes)


def random_inputs(rng: np.random.Generator, n: int, size: int, zp: int) -> np.ndarray:
    """Mix of uniform int8, values near the zero point, and saturated extremes."""
    xs = [rng.integers(-128, 128, size) for _ in range(max(1, n - 2))]
    xs.append(np.clip(zp + rng.integers(-3, 4, size), -128, 127))
    xs.append(rng.choice([-128, 127], size))
    return np.stack(xs[:n]).astype(np.int8)


def first_mismatch(a: np.ndarray, b: np.ndarray) -> str:
    idx = np.argwhere(a != b)
    if len(idx) == 0:
        return "equal"
    i = tuple(idx[0])
    return f"{len(idx)} differ; first at {i}: engine {a[i]} vs TFLM {b[i]}"

