"""Native int8 engine vs the real TFLM interpreter, bit for bit.

Random small Keras models (Conv1D, DepthwiseConv1D, Max/AveragePooling1D, Dense, Add, Softmax with
random kernel sizes, strides, padding, channels, activations) are converted to full int8 with the
TFLite converter; random inputs go through TFLM and through the engine built for the host
(gcc -Wall -Wextra -Werror, and under ASan/UBSan) and, for a few models, for the Cortex-M4 DSP
path in QEMU. Every output byte must be equal.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, have_arm_toolchain
from host_tools.errors import SleepEdgeError

_H_PATH = REPO_ROOT / "firmware" / "tests" / "engine" / "harness.py"
_spec = importlib.util.spec_from_file_location("engine_harness", _H_PATH)
H = importlib.util.module_from_spec(_spec)
sys.modules["engine_harness"] = H
_spec.loader.exec_module(H)

#: Seeds of random models checked on the host; together they cover every operator and option
#: (test_seed_list_covers_every_operator_option guards that).
SEEDS = list(range(30))
#: Subset also run under AddressSanitizer + UndefinedBehaviorSanitizer.
SAN_SEEDS = SEEDS[::3]
N_INPUTS = 12

pytestmark = [pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host C compiler"),
              pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")]


@functools.lru_cache(maxsize=None)
def _model(seed: int) -> bytes:
    model, shape = H.random_model(seed)
    return H.convert_int8(model, shape, seed)


@functools.lru_cache(maxsize=None)
def _plan(seed: int):  # -> host_tools.deploy.plan.Plan
    from host_tools.deploy.plan import build_plan

    return build_plan(_model(seed), f"seed{seed}")


def _write_plan(seed: int, d: Path) -> None:
    from host_tools.deploy.plan import plan_to_c

    h, c = plan_to_c(_plan(seed))
    d.mkdir(parents=True, exist_ok=True)
    (d / "model_plan.h").write_text(h)
    (d / "model_plan.c").write_text(c)


def _check_seed(seed: int, tmp_path: Path, sanitize: bool) -> None:
    plan = _plan(seed)
    _write_plan(seed, tmp_path)
    exe = H.compile_host(tmp_path, tmp_path / "engine_host", sanitize=sanitize)
    rng = np.random.default_rng(1000 + seed)
    x = H.random_inputs(rng, N_INPUTS, plan.input.size, plan.input.zero_point)
    want = H.tflm_run(_model(seed), x)
    got = H.run_host(exe, x, plan.output.size, tmp_path)
    assert np.array_equal(got, want), f"seed {seed} {[o.tflite_op for o in plan.ops]}: " + \
        H.first_mismatch(got, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_model_matches_tflm(seed: int, tmp_path: Path) -> None:
    _check_seed(seed, tmp_path, sanitize=False)


@pytest.mark.parametrize("seed", SAN_SEEDS)
def test_random_model_matches_tflm_under_sanitizers(seed: int, tmp_path: Path) -> None:
    _check_seed(seed, tmp_path, sanitize=True)


def test_seed_list_covers_every_operator_option() -> None:
    """The random seeds exercise each operator and each parameter that changes kernel code."""
    seen: set[str] = set()
    for seed in SEEDS:
        for op in _plan(seed).ops:
            q = op.params
            seen.add(op.tflite_op)
            if op.kind in ("conv", "dwconv", "maxpool", "avgpool"):
                seen.add(f"{op.kind}:stride{'>1' if q['stride'] > 1 else '1'}")
                seen.add(f"{op.kind}:pad{'>0' if q['pad'] > 0 else '0'}")
            if op.kind in ("conv", "dwconv"):
                seen.add(f"{op.kind}:{ {0: 'none', 1: 'relu', 3: 'relu6'}.get(q['act'], '?')}")
            if op.kind == "conv" and op.tflite_op == "CONV_2D":
                seen.add(f"conv:in_c {'odd' if q['in_c'] % 2 else 'even'}")
                seen.add(f"conv:out_c%4={q['out_c'] % 4}")
                seen.add("conv:fast_rq" if "rq" in op.arrays else "conv:exact_rq")
            if op.kind == "dwconv" and q["depth_mult"] > 1:
                seen.add("dwconv:depth_mult>1")
    need = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
            "ADD", "SOFTMAX", "conv:stride>1", "conv:pad>0", "conv:pad0", "conv:relu", "conv:relu6",
            "conv:none", "conv:in_c odd", "conv:in_c even", "conv:out_c%4=0", "conv:out_c%4=1",
            "conv:out_c%4=3", "conv:fast_rq", "dwconv:stride>1", "dwconv:depth_mult>1",
            "maxpool:stride>1", "avgpool:pad>0", "maxpool:pad>0"}
    assert need <= seen, f"not covered: {sorted(need - seen)}"


def test_arena_plan_never_overlaps_live_buffers() -> None:
    """Two buffers alive during the same op never share arena bytes, and all fit the arena."""
    for seed in SEEDS:
        plan = _plan(seed)
        keys = list(plan.sizes)
        for k in keys:
            assert plan.offsets[k] % 8 == 0
            assert plan.offsets[k] + plan.sizes[k] <= plan.arena_bytes
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                (a0, a1), (b0, b1) = plan.lifetimes[a], plan.lifetimes[b]
                if a1 < b0 or b1 < a0:
                    continue
                sa, sb = plan.offsets[a], plan.offsets[b]
                assert sa + plan.sizes[a] <= sb or sb + plan.sizes[b] <= sa, (seed, a, b)


# --- requantization arithmetic -------------------------------------------------------------

def _srdhm(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)  # gemmlowp: division truncating toward zero
    return q if ab + nudge >= 0 else -q


def _rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def _double_rounding(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    xs = ((x << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    return _rdbpot(_srdhm(xs, m), right)


def _single_rounding(x: int, m: int, shift: int) -> int:
    total = 31 - shift
    return (x * m + (1 << (total - 1))) >> total


@pytest.fixture(scope="module")
def engine_lib(tmp_path_factory) -> ctypes.CDLL:
    d = tmp_path_factory.mktemp("engine_so")
    so = d / "libse_engine.so"
    subprocess.run(["gcc", *H.HOST_CFLAGS, "-shared", "-fPIC", f"-I{H.ENGINE_DIR}",
                    str(H.ENGINE_DIR / "se_engine.c"), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    lib.se_mul_by_quantized_multiplier.restype = ctypes.c_int32
    lib.se_mul_by_quantized_multiplier.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]
    lib.se_engine_run.restype = ctypes.c_int
    return lib


def test_requantization_is_tflm_double_rounding(engine_lib: ctypes.CDLL) -> None:
    """The C helper equals gemmlowp double rounding, which the TFLM package uses (the bit-exact
    model tests above fail with single rounding); single rounding differs on these inputs."""
    from host_tools.deploy.plan import quantize_multiplier

    rng = np.random.default_rng(5)
    differs = 0
    for _ in range(4000):
        real = float(np.exp(rng.uniform(np.log(1e-6), np.log(0.99))))
        m, shift = quantize_multiplier(real)
        x = int(rng.integers(-(1 << 24), 1 << 24))
        got = engine_lib.se_mul_by_quantized_multiplier(x, m, shift)
        assert got == _double_rounding(x, m, shift), (x, m, shift)
        differs += got != _single_rounding(x, m, shift)
    for x, m, shift in [(-(1 << 31), 1 << 30, 0), ((1 << 31) - 1, (1 << 31) - 1, 0),
                        (-(1 << 31), -(1 << 31), 0), (12345, 1 << 30, 3), (-7, 1 << 30, -1)]:
        assert engine_lib.se_mul_by_quantized_multiplier(x, m, shift) == _double_rounding(x, m, shift)
    assert differs > 0


@pytest.mark.parametrize("real", [0.5, 1.0, 0.75, 1e-3, 3.0, 2.0 ** -40])
def test_quantize_multiplier(real: float) -> None:
    from host_tools.deploy.plan import quantize_multiplier

    m, shift = quantize_multiplier(real)
    if real < 2.0 ** -32:
        assert (m, shift) == (0, 0)  # TFLM flushes multipliers below 2^-31 to zero
        return
    assert (1 << 30) <= m < (1 << 31)
    assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -30
    if real == 0.5:
        assert (m, shift) == (1 << 30, 0)
    if real == 1.0:
        assert (m, shift) == (1 << 30, 1)


def test_engine_run_rejects_bad_arguments(engine_lib: ctypes.CDLL, tmp_path: Path) -> None:
    """se_engine_run refuses NULL pointers, a too-small arena and a misaligned one."""
    seed = SEEDS[0]
    _write_plan(seed, tmp_path)
    so = tmp_path / "libplan.so"
    subprocess.run(["gcc", *H.HOST_CFLAGS, "-shared", "-fPIC", f"-I{H.ENGINE_DIR}", f"-I{tmp_path}",
                    str(H.ENGINE_DIR / "se_engine.c"), str(tmp_path / "model_plan.c"), "-o", str(so)],
                   check=True)
    lib = ctypes.CDLL(str(so))
    plan = ctypes.c_void_p.in_dll(lib, "g_se_plan")  # address of the struct's first bytes
    plan_ptr = ctypes.cast(ctypes.addressof(plan), ctypes.c_void_p)
    p = _plan(seed)
    arena = (ctypes.c_uint64 * (p.arena_bytes // 8 + 2))()
    x = (ctypes.c_int8 * p.input.size)()
    y = (ctypes.c_int8 * p.output.size)()
    run = lib.se_engine_run
    run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
    base = ctypes.addressof(arena)
    assert run(plan_ptr, base, p.arena_bytes, x, y) == 0
    assert run(plan_ptr, base, p.arena_bytes - 1, x, y) == 2
    assert run(plan_ptr, base + 4, p.arena_bytes, x, y) == 2
    assert run(None, base, p.arena_bytes, x, y) == 1
    assert run(plan_ptr, base, p.arena_bytes, None, y) == 1


# --- bad models ----------------------------------------------------------------------------

def test_unsupported_operator_is_named() -> None:
    from host_tools.deploy.plan import build_plan

    H.quiet_tf()
    import tf_keras as keras

    inp = keras.Input((40, 1))
    x = keras.layers.Conv1D(4, 3, activation="tanh")(inp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    data = H.convert_int8(keras.Model(inp, x), (40, 1), seed=1)
    with pytest.raises(SleepEdgeError, match=r"operator (TANH|MEAN) is not supported"):
        build_plan(data, "bad.tflite")


def test_float_model_is_rejected() -> None:
    from host_tools.deploy.plan import build_plan

    H.quiet_tf()
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((20, 1))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp)))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(SleepEdgeError, match=r"float\.tflite: tensor .* (not quantized|not int8)"):
        build_plan(data, "float.tflite")


@pytest.mark.parametrize("blob", [b"", b"not a flatbuffer at all", bytes(range(256)) * 4])
def test_garbage_is_rejected(blob: bytes) -> None:
    from host_tools.deploy.plan import build_plan

    with pytest.raises(SleepEdgeError, match="junk.tflite"):
        build_plan(blob, "junk.tflite")


def test_write_plan_missing_file(tmp_path: Path) -> None:
    from host_tools.deploy.plan import write_plan

    with pytest.raises(SleepEdgeError, match="nope.tflite: cannot read"):
        write_plan(tmp_path / "nope.tflite", tmp_path)


# --- Cortex-M4 DSP path in QEMU ------------------------------------------------------------

_mq_spec = importlib.util.spec_from_file_location("measure_qemu", _H_PATH.parent / "measure_qemu.py")
MQ = importlib.util.module_from_spec(_mq_spec)
sys.modules["measure_qemu"] = MQ  # dataclasses look their module up
_mq_spec.loader.exec_module(MQ)


@pytest.mark.qemu
@pytest.mark.skipif(not have_arm_toolchain(), reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("seed", [3, 19, 22, 26])
def test_dsp_build_matches_tflm_in_qemu(seed: int, tmp_path: Path) -> None:
    res = MQ.measure(_model(seed), tmp_path, n_vectors=3, seed=seed)
    assert res.vectors == 3 and res.vectors_ok == 3


@pytest.mark.qemu
@pytest.mark.skipif(not have_arm_toolchain(), reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_edge_like_model_cost_in_qemu(tmp_path: Path) -> None:
    """Whole inference of an edge-shaped model (untrained weights): bit-exact, within budgets,
    and at most ~1.2 instructions per MAC (QEMU instruction count, not cycles)."""
    model, shape = H.edge_like_model(0)
    data = H.convert_int8(model, shape, seed=0, amp=30.0)
    res = MQ.measure(data, tmp_path, n_vectors=2)
    print(f"edge-like model: {res.instructions} instructions, {res.macs} MACs, "
          f"{res.instr_per_mac:.3f} instr/MAC, arena {res.arena_bytes} B")
    assert res.vectors_ok == res.vectors == 2
    assert res.arena_bytes <= 48 * 1024
    assert res.text_bytes + res.data_bytes <= 256 * 1024
    assert res.instr_per_mac <= 1.25
    assert math.isfinite(res.instr_per_mac) and res.instructions > res.macs / 2
