"""firmware/core on the host: C unit tests, bit-exact filter, the app end to end, fuzzing, and
the Cortex-M4 cross-build.

Everything is built by firmware/tests/Makefile with host gcc (ASan + UBSan for the tests and
the fuzz harness). The signals here are synthetic: these tests check arithmetic and protocol
behaviour, not sleep-staging accuracy.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from host_tools import constants as C
from host_tools.data import filters, quality
from host_tools.device import protocol as P

REPO_ROOT = Path(__file__).resolve().parent.parent
FW_TESTS = REPO_ROOT / "firmware" / "tests"
BUILD = REPO_ROOT / "firmware" / "build" / "host-tests"
T = C.FRAME_TYPES


@pytest.fixture(scope="module")
def host_build() -> Path:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.fail("host gcc and make are needed to build firmware/tests")
    r = subprocess.run(["nice", "make", "-s", "-C", str(FW_TESTS), f"BUILD={BUILD}", "all"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return BUILD


@pytest.mark.parametrize("unit", ["test_filter", "test_protocol", "test_norm", "test_app"])
def test_c_unit_tests(host_build, unit):
    r = subprocess.run([str(host_build / unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) checks, 0 failures", r.stdout)
    assert m and int(m.group(1)) > 0, r.stdout


def eeg_like_night(hours: float, seed: int, artefacts: int = 20) -> np.ndarray:
    """Synthetic int16 device samples: 1/f-ish background whose amplitude follows a stage cycle
    (per-stage std from the real Sleep-EDF statistics, median), slow electrode drift, and a few
    clipped movement artefacts that saturate the int16 range."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * C.FS_HZ)
    std_uv = {"W": 21.6, "N1": 10.4, "N2": 13.6, "N3": 27.0, "REM": 10.5}
    cycle = ["W", "N1", "N2", "N2", "N3", "N3", "N2", "REM", "REM", "N2"]
    amp = np.repeat([std_uv[cycle[(k // 20) % len(cycle)]] for k in range(n // C.EPOCH_SAMPLES + 1)],
                    C.EPOCH_SAMPLES)[:n]
    pink = scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    uv = pink / pink.std() * amp
    uv += 300.0 * np.sin(2 * np.pi * np.arange(n) / (C.FS_HZ * 1800.0))  # drift
    for start in rng.integers(0, n - 500, artefacts):  # movement artefacts
        uv[start:start + 300] += rng.choice([-1, 1]) * rng.uniform(2000, 20000)
    return filters.to_device_samples(uv)


def test_c_filter_is_bit_exact_with_host_on_an_8h_signal(host_build):
    q = eeg_like_night(8.0, seed=11)
    assert q.size == 8 * 3600 * 100 and (q.min() == -32768 or q.max() == 32767)  # saturation included
    r = subprocess.run([str(host_build / "filter_tool")], input=q.astype("<i2").tobytes(),
                       capture_output=True, check=True, timeout=120)
    y_c = np.frombuffer(r.stdout, dtype="<f4")
    y_host, _ = filters.filter_causal(filters.from_device_samples(q))
    assert y_c.shape == y_host.shape
    assert np.array_equal(y_c, y_host)
    # Against float64 scipy on the same input: the float32 rounding error over a night.
    y64 = scipy.signal.sosfilt(filters.design_sos().astype(np.float64), q.astype(np.float64) * C.SAMPLE_UV_PER_LSB)
    err = np.abs(y_c - y64)
    peak = float(np.max(np.abs(y64)))
    print(f"|C float32 - float64 sosfilt| over 8 h: max {err.max():.3g} uV (peak |y| {peak:.0f} uV), "
          f"median {np.median(err):.2g} uV, 99th pct {np.percentile(err, 99):.2g} uV")
    # Largest errors sit on the saturating artefacts; typical error is far below one 0.25 uV step.
    assert err.max() < 1e-4 * peak
    assert np.percentile(err, 99) < 0.05 * C.SAMPLE_UV_PER_LSB


# --- the application end to end (app_tool = se_app + mock model in MOCK_DERIVED mode) -----------

MOCK_IN_SCALE = np.float32(200.0) / np.float32(127.0)  # what mock_model.c reports, float32 division
MOCK_OUT_SCALE = np.float32(1.0 / 256.0)
MOCK_OUT_ZP = -128


def mock_derive(q_in: np.ndarray) -> np.ndarray:
    """Python statement of mock_model_derive (firmware/tests/mock_model.c)."""
    s = int(np.abs(q_in.astype(np.int64)).sum()) & 0xFFFFFFFF
    out = np.full(C.N_CLASSES, -128, dtype=np.int8)
    out[s % C.N_CLASSES] = -127 + s % 255
    return out


class Script:
    """Records for app_tool: kind u8, arg u32, len u32, data."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.seq = 0

    def rx(self, data: bytes) -> None:
        self.buf += b"R" + struct.pack("<II", 0, len(data)) + data

    def frame(self, ftype: int, payload: bytes) -> None:
        self.rx(P.encode_frame(ftype, self.seq % 256, payload))
        self.seq += 1

    def poll(self) -> None:
        self.buf += b"P" + struct.pack("<II", 0, 0)

    def time(self, ms: int) -> None:
        self.buf += b"T" + struct.pack("<II", ms, 0)


def test_app_end_to_end_against_host_reference(host_build, tmp_path):
    n_epochs = 8
    q = eeg_like_night(n_epochs * 30 / 3600, seed=12, artefacts=2)
    blocks = q.reshape(-1, C.SAMPLES_PER_BLOCK)
    missing = {70, 71}  # epoch 2 loses two blocks
    garbage = b"\x13\x37garbage"

    s = Script()
    s.time(1000)
    s.rx(b"\x00")
    for b in range(len(blocks)):
        if b in missing:
            continue
        s.frame(T["SAMPLES"], P.samples_payload(b, blocks[b]))
        if b == 45:
            s.frame(T["SAMPLES"], P.samples_payload(40, blocks[40]))  # stale: dropped
            s.rx(garbage + b"\x00")
        if b % 30 == 29 and b < 150:
            s.poll()
    s.poll()
    s.frame(T["PING"], P.ping_payload(0xABCD))

    # Host reference: the device's stream with zeros where blocks are missing.
    q_dev = blocks.copy()
    for b in missing:
        q_dev[b] = 0
    y, _ = filters.filter_causal(filters.from_device_samples(q_dev.ravel()))
    y_ep = y.reshape(n_epochs, C.EPOCH_SAMPLES)
    x_in = filters.quantize_model_input(y_ep, float(MOCK_IN_SCALE), 0)
    esc_ref = np.clip(np.floor(y_ep * np.float32(4.0) + np.float32(0.5)), -32768, 32767).astype(np.int16)
    outs = [mock_derive(x_in[k]) for k in range(n_epochs)]
    conf = [np.float32(int(o.max()) - MOCK_OUT_ZP) * MOCK_OUT_SCALE for o in outs]
    # The quality gate on the raw samples: artefact epochs get no inference.
    verdicts = quality.recording_verdicts(q)
    artefacts = [k for k in range(n_epochs) if k != 2 and verdicts[k] != quality.OK]
    assert 0 < len(artefacts) < 4, verdicts
    complete = [k for k in range(n_epochs) if k != 2 and k not in artefacts]
    escalated = [k for k in complete if conf[k] < np.float32(C.DEFAULT_CONFIDENCE_THRESHOLD)]
    assert escalated and len(escalated) < n_epochs - 1, "signal should give both kinds of epoch"

    # Answer the first escalation from the cloud, let the rest time out.
    s.frame(T["CLOUD_LABEL"], P.cloud_label_payload(escalated[0], 3))
    s.time(1000 + C.DEFAULT_ESCALATION_TIMEOUT_MS + 1)
    s.poll()
    inputs_path = tmp_path / "inputs.bin"
    r = subprocess.run([str(host_build / "app_tool"), str(inputs_path)], input=bytes(s.buf),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()

    dec = P.FrameDecoder()
    msgs = [P.decode_message(f) for f in dec.feed(r.stdout)]
    assert dec.garbage_bytes == dec.bad_crc == dec.oversize == 0
    assert isinstance(msgs[0], P.Hello) and msgs[0].fs_hz == C.FS_HZ and msgs[0].protocol == C.PROTOCOL_VERSION

    # Model inputs: bit-exact with filters.quantize_model_input, for every complete epoch.
    seen = np.fromfile(inputs_path, dtype=np.int8).reshape(-1, C.EPOCH_SAMPLES)
    assert seen.shape[0] == len(complete)
    for row, k in zip(seen, complete):
        assert np.array_equal(row, x_in[k]), f"model input of epoch {k}"

    results = {m.epoch: m for m in msgs if isinstance(m, P.Result)}
    finals = {m.epoch: m for m in msgs if isinstance(m, P.Final)}
    escs = {m.epoch: m for m in msgs if isinstance(m, P.Escalate)}
    assert sorted(results) == sorted(finals) == list(range(n_epochs))
    assert results[2].incomplete and results[2].stage == C.STAGE_UNKNOWN
    assert finals[2].source_name == "incomplete"
    for k in artefacts:
        assert results[k].artefact and results[k].quality == C.QUALITY_VERDICTS[verdicts[k]]
        assert results[k].stage == C.STAGE_UNKNOWN and not results[k].escalated
        assert finals[k].source_name == "artefact" and finals[k].stage == C.STAGE_UNKNOWN
    for k in complete:
        res = results[k]
        assert res.stage == int(np.argmax(outs[k])) and res.probs == tuple(int(v) for v in outs[k])
        assert np.float32(res.confidence) == conf[k]
        assert res.escalated == (k in escalated)
    assert sorted(escs) == escalated
    for k in escalated:
        assert np.array_equal(escs[k].samples, esc_ref[k]), f"ESCALATE samples of epoch {k}"
    assert finals[escalated[0]].source_name == "cloud" and finals[escalated[0]].stage == 3
    for k in escalated[1:]:
        assert finals[k].source_name == "timeout" and finals[k].stage == results[k].stage
    for k in set(complete) - set(escalated):
        assert finals[k].source_name == "edge" and finals[k].stage == results[k].stage

    # PING -> PONG, then STATUS with the counters of what happened.
    i = next(j for j, m in enumerate(msgs) if isinstance(m, P.Pong))
    assert msgs[i].token == 0xABCD and isinstance(msgs[i + 1], P.Status)
    st = msgs[i + 1]
    assert st.epochs == n_epochs and st.stale_blocks == 1 and st.missing_blocks == len(missing)
    assert st.garbage_bytes == len(garbage) and st.bad_crc == 0
    assert st.escalations == len(escalated) and st.cloud_answers == 0
    assert st.rx_frames == len(blocks) - len(missing) + 2  # + the stale block + the ping


def test_fuzz_one_million_inputs(host_build):
    r = subprocess.run(["nice", str(host_build / "fuzz"), "1000000"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    m = re.search(r"fuzz: (\d+) inputs", r.stdout)
    assert m and int(m.group(1)) >= 1_000_000, r.stdout
    print(r.stdout.strip())
    # The generator must actually reach the interesting states, not only reject noise.
    for what in ("ESCALATE", "edge", "cloud", "timeout", "incomplete", "artefact", "NACK", "recovered"):
        count = int(re.search(rf"(\d+) {what}", r.stdout).group(1))
        assert count > 0, f"fuzz never produced {what}: {r.stdout}"


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_core_cross_compiles_for_cortex_m4_without_heap(tmp_path):
    r = subprocess.run(["make", "-s", "-C", str(FW_TESTS), f"BUILD={tmp_path}", "arm-check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for obj in ("arm_se_filter.o", "arm_se_protocol.o", "arm_se_quality.o", "arm_se_norm.o", "arm_se_app.o"):
        nm = subprocess.run(["arm-none-eabi-nm", "-u", str(tmp_path / obj)], capture_output=True,
                            text=True, check=True)
        undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
        # Only the model interface / other core units, EABI helpers and a few libc/libm leaves.
        allowed = {"floorf", "memcpy", "memset", "memmove"} | {
            s for s in undefined if s.startswith(("se_", "__aeabi_"))}
        assert undefined <= allowed, f"{obj} needs {sorted(undefined - allowed)}"
        assert not undefined & {"malloc", "free", "calloc", "realloc", "printf"}
