"""The firmware on the emulated STM32F405 (QEMU netduinoplus2): board layer, bit-exact inference
against the host's TFLM interpreter, the device benchmark, and bad inputs to the tooling.

The model is the project's edge CNN (``models.build_edge_cnn``) with untrained random weights,
converted to full int8 and exported with ``c_export`` into a temporary folder, so the test does
not depend on a trained model being present. The signal is synthetic EEG (``host_tools.data.synth``).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.errors import SleepEdgeError
from tests.conftest import export_random_edge_model, have_arm_toolchain

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(not have_arm_toolchain(), reason="arm-none-eabi-gcc or qemu-system-arm is not installed"),
]

N_EPOCHS = 21
THRESHOLD = 0.65  # not the firmware default (0.60): HELLO must report the exported one


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signal_raw() -> np.ndarray:
    """N_EPOCHS of synthetic Fpz-Cz EEG as the int16 device samples the host streams."""
    from host_tools.bench.device import synthetic_eeg
    from host_tools.data.filters import to_device_samples

    return to_device_samples(synthetic_eeg(N_EPOCHS, seed=3))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, signal_raw) -> Path:
    """A random-weight edge CNN, full int8, exported to C (model_data.*, model_plan.*)."""
    return export_random_edge_model(tmp_path_factory.mktemp("edge_model"), signal_raw, seed=1,
                                    threshold=THRESHOLD, name="test_random")


@pytest.fixture(scope="module")
def firmware_elf(model_dir, tmp_path_factory) -> Path:
    from host_tools.device.emulator import build_firmware

    return build_firmware(model_dir, tmp_path_factory.mktemp("fw_build"))


@pytest.fixture(scope="module")
def selftest_elf(tmp_path_factory) -> Path:
    from host_tools.device.emulator import build_firmware

    return build_firmware(out_dir=tmp_path_factory.mktemp("selftest_build"), target="selftest")


def _read_until(ser, marker: bytes, timeout_s: float = 20.0) -> bytes:
    buf = bytearray()
    deadline = time.monotonic() + timeout_s
    while marker not in buf:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} from the board within {timeout_s} s; got {bytes(buf[-200:])!r}")
        # One byte per call: the board may exit right after the line, and pyserial's socket
        # backend drops a partly filled read when the connection closes.
        buf += ser.read(1)
    return bytes(buf)


# --- board layer (self-test image) ---------------------------------------------------------------

def test_board_echo_backpressure_and_semihosting_exit(selftest_elf):
    """32 KB through the USART1 ring: nothing lost, the ring did fill (RXNE masked, QEMU
    back-pressured the host), and semihosting SYS_EXIT_EXTENDED ends QEMU with the code."""
    import serial

    from host_tools.device.emulator import QemuDevice

    rng = np.random.default_rng(11)
    payload = rng.integers(5, 256, size=32 * 1024, dtype=np.uint8).tobytes()  # no 0x01 / 0x04
    with QemuDevice(selftest_elf, timeout_s=120) as dev:
        ser = serial.serial_for_url(dev.url, timeout=0.2)
        banner = _read_until(ser, b"\n")
        assert banner.startswith(b"SE-SELFTEST ring=2048")
        echoed = bytearray()

        def reader() -> None:
            deadline = time.monotonic() + 60
            while len(echoed) < len(payload) and time.monotonic() < deadline:
                echoed.extend(ser.read(4096))

        th = threading.Thread(target=reader)
        th.start()
        ser.write(payload)
        th.join()
        assert bytes(echoed[: len(payload)]) == payload
        ser.write(b"\x04")
        stats = _read_until(ser, b"\n")
        code = dev.wait(30)
        ser.close()
    m = re.search(rb"STATS rx=(\d+) ovf=(\d+) pauses=(\d+)", stats)
    assert m, stats
    rx, ovf, pauses = (int(v) for v in m.groups())
    assert rx == len(payload) + 1  # every byte plus the END command went through the ring
    assert ovf == 0
    # The image stops draining until the ring is nearly full; 32 KB through a 2 KB ring means
    # the high-water mark masked RXNE (and QEMU held the host back) many times.
    assert pauses >= 2
    assert code == 42


def test_board_instruction_counter_under_icount(selftest_elf):
    """With -icount shift=0 the SysTick-derived counter counts instructions: a loop of exactly
    2,000,000 instructions measures within the counter's overhead."""
    import serial

    from host_tools.device.emulator import QemuDevice

    with QemuDevice(selftest_elf, icount=True, timeout_s=120) as dev:
        ser = serial.serial_for_url(dev.url, timeout=0.2)
        _read_until(ser, b"\n")
        counts = []
        for _ in range(2):
            ser.write(b"\x01")
            line = _read_until(ser, b"\n").decode()
            measured, expected = (int(v) for v in re.search(r"INSNS (\d+) (\d+)", line).groups())
            counts.append(measured)
        ser.write(b"\x04")
        _read_until(ser, b"\n")
        assert dev.wait(30) == 42
        ser.close()
    assert expected == 2_000_000
    for measured in counts:
        # two board_instructions() calls and the call overhead add tens of instructions;
        # a wrong tick->instruction factor would be off by percent, i.e. >= 20,000
        assert 0 <= measured - expected < 500, counts


# --- the real firmware ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stream_log(firmware_elf, signal_raw) -> dict:
    """Boot the firmware, stream N_EPOCHS over the emulated UART, PING, collect everything."""
    from host_tools.device import protocol as P
    from host_tools.device.emulator import DeviceSession, QemuDevice

    with QemuDevice(firmware_elf, timeout_s=240) as dev, DeviceSession(dev.url) as link:
        hello = link.wait_for(lambda m: isinstance(m, P.Hello), 30, what="HELLO")
        link.stream_blocks(signal_raw)
        link.wait_for(lambda m: isinstance(m, P.Result) and m.epoch == N_EPOCHS - 1, 120, what="last RESULT")
        n = len(link.messages)
        link.send(P.Ping(0xC0FFEE))
        pong = link.wait_for(lambda m: isinstance(m, P.Pong), 30, since=n, what="PONG")
        status = link.wait_for(lambda m: isinstance(m, P.Status), 30, since=n, what="STATUS")
        alive = dev.running()
        return {
            "hello": hello, "pong": pong, "status": status, "alive": alive,
            "results": {r.epoch: r for r in link.of_type(P.Result)},
            "escalations": {e.epoch: e for e in link.of_type(P.Escalate)},
        }


@pytest.fixture(scope="module")
def host_reference(model_dir, signal_raw) -> dict:
    """What the device must compute: filter_device on the streamed samples, the firmware's
    quantizer, and the real TFLM interpreter (tflite_micro) on the same .tflite."""
    from tflite_micro.python.tflite_micro import runtime

    from host_tools.data.filters import filter_device, quantize_model_input

    it = runtime.Interpreter.from_bytes((model_dir / "model.tflite").read_bytes(), arena_size=512 * 1024)
    inp, out = it.get_input_details(0), it.get_output_details(0)
    iq, oq = inp["quantization_parameters"], out["quantization_parameters"]
    y = filter_device(signal_raw.astype(np.float64) * C.SAMPLE_UV_PER_LSB).reshape(N_EPOCHS, C.EPOCH_SAMPLES)
    q = quantize_model_input(y, float(iq["scales"][0]), int(iq["zero_points"][0]))
    raw = np.empty((N_EPOCHS, C.N_CLASSES), dtype=np.int8)
    for k in range(N_EPOCHS):
        it.set_input(q[k].reshape(inp["shape"]), 0)
        it.invoke()
        raw[k] = np.asarray(it.get_output(0)).reshape(-1)
    return {"y": y, "raw": raw, "out_scale": float(oq["scales"][0]), "out_zp": int(oq["zero_points"][0])}


def test_hello_identifies_model_and_constants(stream_log, model_dir):
    hello = stream_log["hello"]
    tflite = (model_dir / "model.tflite").read_bytes()
    header = (model_dir / "model_data.h").read_text()
    hash_u32 = int(re.search(r"#define\s+SE_MODEL_HASH_U32\s+(0x[0-9a-fA-F]+|\d+)", header).group(1), 0)
    # SE_MODEL_HASH_U32 is the first 4 bytes of the flatbuffer's SHA-256, big-endian
    assert hash_u32 == int(hashlib.sha256(tflite).hexdigest()[:8], 16)
    # A head-less model: HELLO names the edge model alone (with a head: test_context.py).
    assert not (model_dir / "context_data.h").is_file()
    assert hello.model_hash == hash_u32
    assert (hello.fs_hz, hello.epoch_samples) == (C.FS_HZ, C.EPOCH_SAMPLES)
    assert hello.protocol == C.PROTOCOL_VERSION and hello.fw_version == C.FIRMWARE_VERSION
    assert hello.timeout_ms == C.DEFAULT_ESCALATION_TIMEOUT_MS
    assert stream_log["pong"].token == 0xC0FFEE
    assert stream_log["alive"]


def test_hello_threshold_is_the_exported_models(stream_log):
    assert stream_log["hello"].threshold == pytest.approx(float(np.float32(THRESHOLD)), abs=0)


def test_results_equal_host_tflm(stream_log, host_reference):
    """Every RESULT's raw int8 output equals the host's TFLM output for the same epoch."""
    results, raw = stream_log["results"], host_reference["raw"]
    assert len(np.unique(raw, axis=0)) > 1, "degenerate test model: every epoch gives the same output"
    assert sorted(results) == list(range(N_EPOCHS))
    device = np.array([results[k].probs for k in range(N_EPOCHS)], dtype=np.int8)
    np.testing.assert_array_equal(device, raw)
    threshold = np.float32(stream_log["hello"].threshold)
    for k in range(N_EPOCHS):
        r = results[k]
        assert r.flags == 0 and r.stage == int(np.argmax(raw[k]))
        conf = np.float32(int(raw[k].max()) - host_reference["out_zp"]) * np.float32(host_reference["out_scale"])
        assert r.confidence == pytest.approx(float(conf), rel=1e-6)
        assert r.escalated == bool(conf < threshold)


def test_escalations_carry_the_filtered_epoch(stream_log, host_reference):
    """ESCALATE = the host's filtered epoch re-quantized to int16 at 0.25 uV, for exactly the
    epochs whose RESULT says escalated."""
    escalations, y = stream_log["escalations"], host_reference["y"]
    assert set(escalations) == {k for k, r in stream_log["results"].items() if r.escalated}
    assert escalations, "the random model should leave some epochs below the threshold"
    for k, esc in escalations.items():
        expect = np.clip(np.floor(y[k] * np.float32(4.0) + np.float32(0.5)), -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(np.asarray(esc.samples), expect)


def test_status_after_stream(stream_log):
    status = stream_log["status"]
    assert status.epochs == N_EPOCHS
    assert status.rx_frames == N_EPOCHS * C.BLOCKS_PER_EPOCH + 1  # SAMPLES blocks + PING
    assert status.bad_crc == 0 and status.garbage_bytes == 0 and status.rx_overflows == 0
    assert status.stale_blocks == 0 and status.missing_blocks == 0
    assert status.infer_cycles_last_epoch > 0 and status.filter_cycles_last_epoch > 0


def test_bench_device_report(model_dir, tmp_path):
    """The benchmark builds a bench image, runs it under -icount and reports consistent figures."""
    from host_tools.bench.device import read_plan_macros, run_bench
    from host_tools.device.emulator import image_size

    report = run_bench(model_dir, epochs=2, build_dir=tmp_path / "bench", show_progress=False)
    json.dumps(report)  # serialisable as written by the CLI
    size = image_size(tmp_path / "bench" / "firmware.elf")
    plan = read_plan_macros(model_dir)
    assert report["flash_bytes"] == size["text"] + size["data"]
    assert report["static_ram_bytes"] == size["data"] + size["bss"]
    # the stack was painted and the app + inference used some of it, but not all 120 KB
    assert 256 < report["stack_high_water_bytes"] < 64 * 1024
    assert report["ram_bytes"] == report["static_ram_bytes"] + report["stack_high_water_bytes"]
    assert report["arena_bytes"] == plan["SE_PLAN_ARENA_BYTES"]
    assert report["macs_per_epoch"] == plan["SE_PLAN_MACS"]
    infer = [e["inference_instructions"] for e in report["per_epoch"]]
    # Under -icount the network's instruction count is the same every epoch (int8 kernels have
    # no data-dependent branches worth more than the counter's ~6-instruction resolution).
    assert max(infer) - min(infer) < 0.01 * max(infer)
    # At least one instruction per... MAC would be optimistic; more than 20 would mean the
    # counter is wrong (wall-clock time instead of instructions).
    assert 0.2 < report["instructions_per_mac"] < 20
    assert report["filter_instructions_per_epoch"] > C.EPOCH_SAMPLES  # several instructions a sample


# --- bad inputs ----------------------------------------------------------------------------------

def test_build_firmware_rejects_model_dir_without_sources(tmp_path):
    from host_tools.device.emulator import build_firmware

    (tmp_path / "model_data.c").write_text("/* only one of the four files */\n")
    with pytest.raises(SleepEdgeError, match=r"model_data\.h.*model_plan\.c.*model_plan\.h"):
        build_firmware(tmp_path, tmp_path / "out")


def test_build_firmware_reports_compiler_errors(tmp_path, model_dir):
    from host_tools.device.emulator import build_firmware

    bad = tmp_path / "model"
    bad.mkdir()
    for f in model_dir.iterdir():
        if f.suffix in (".c", ".h"):
            (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model_plan.c").write_text("this is not C;\n")
    with pytest.raises(SleepEdgeError, match=r"(?s)firmware build failed.*model_plan\.c:1:1: error"):
        build_firmware(bad, tmp_path / "out")


def test_qemu_device_surfaces_qemu_errors(tmp_path):
    """A missing image is refused up front; an image QEMU cannot run ends the session with
    QEMU's own diagnostics instead of a bare "socket disconnected"."""
    from host_tools.device.emulator import DeviceSession, QemuDevice

    with pytest.raises(SleepEdgeError, match="firmware image not found"):
        QemuDevice(tmp_path / "missing.elf").start()
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"\x7fELF" + b"\x00" * 60)  # not a loadable ARM image: the core locks up
    with pytest.raises(SleepEdgeError, match=r"(?s)qemu exited with status -?\d+ running .*junk\.elf:.*qemu"):
        with QemuDevice(junk, timeout_s=60) as dev, DeviceSession(dev.url) as link:
            link.wait_for(lambda m: True, 30, what="HELLO")


def test_bench_rejects_model_dir_without_plan(tmp_path):
    from host_tools.bench.device import read_plan_macros

    with pytest.raises(SleepEdgeError, match="model_plan.h"):
        read_plan_macros(tmp_path)
    (tmp_path / "model_plan.h").write_text("#define SE_PLAN_ARENA_BYTES 1024u\n")
    with pytest.raises(SleepEdgeError, match="SE_PLAN_MACS"):
        read_plan_macros(tmp_path)


def test_make_flash_rejects_unknown_board(repo_root):
    proc = subprocess.run(["make", "-s", "-C", str(repo_root / "firmware"), "flash", "BOARD=arduino_uno"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown BOARD 'arduino_uno'" in proc.stderr


# --- the quality gate and link recovery on the device ----------------------------------------

NOISE = 8  #: garbage bytes (no 0x00) written before one SAMPLES frame: that frame is lost


def bad_signal(signal_raw: np.ndarray) -> np.ndarray:
    """The stream with epochs 4-5 flat (a detached electrode) and 8-9 clipped at +-100 uV."""
    q = signal_raw.reshape(N_EPOCHS, C.EPOCH_SAMPLES).astype(np.int64)
    q[4:6] = q[4, 0]
    q[8:10] = np.clip(q[8:10] * 8, -400, 400)
    return q.astype(np.int16).ravel()


def stream_with_noise(link, q: np.ndarray, noisy_epochs: set[int], rng: np.random.Generator,
                      window_epochs: int = 2) -> dict:
    """Stream as the monitor does (SAMPLES_ARQ, a 2-epoch flow-control window, going back on
    NACK, resending the tail) while writing NOISE garbage bytes straight into the socket before
    one block of each noisy epoch (once: resends go through clean)."""
    from host_tools.device import protocol as P

    blocks = q.reshape(-1, C.SAMPLES_PER_BLOCK)
    end = len(blocks)
    hit = {30 * e + int(rng.integers(0, C.BLOCKS_PER_EPOCH)) for e in noisy_epochs}
    rw, seen, block, sent, tail_tries = P.Rewinder(), 0, 0, 0, 0

    def take_nacks() -> None:
        nonlocal seen
        new = link.messages[seen:]
        seen += len(new)
        for m in new:
            if isinstance(m, P.Nack):
                rw.on_nack(m)

    def reported(epoch: int) -> bool:
        return any(isinstance(m, P.Result) and m.epoch >= epoch for m in link.messages)

    while True:
        take_nacks()
        block = rw.next_block(block)
        if block < end:
            epoch = block // C.BLOCKS_PER_EPOCH
            if block % C.BLOCKS_PER_EPOCH == 0 and epoch >= window_epochs and not reported(epoch - window_epochs):
                link.wait_for(lambda m: isinstance(m, P.Nack) or (isinstance(m, P.Result)
                              and m.epoch >= epoch - window_epochs), 60, since=seen,
                              what=f"RESULT of epoch {epoch - window_epochs}")
                continue  # take a NACK first, if that is what came
            if block in hit:
                hit.discard(block)
                link.serial.write(bytes(rng.integers(1, 256, NOISE, dtype=np.uint8)))
            link.send(P.SamplesArq(block, blocks[block]))
            sent += 1
            block += 1
            continue
        # All sent: a block lost near the end has nothing after it to reveal the gap.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not reported(N_EPOCHS - 1) and not rw.pending:
            time.sleep(0.05)
            take_nacks()
        if rw.pending:
            continue
        if reported(N_EPOCHS - 1) or tail_tries >= 2:
            break
        tail_tries += 1
        block = (max([m.epoch for m in link.of_type(P.Result)], default=-1) + 1) * C.BLOCKS_PER_EPOCH
    assert not hit, "every planned noise burst was written"
    return {"sent": sent, "nacks": rw.nacks, "resent": rw.resent_blocks}


@pytest.fixture(scope="module")
def noisy_log(firmware_elf, signal_raw) -> dict:
    """Boot, stream bad_signal with noise bursts in every other epoch (epoch 0's first block
    included), PING, collect everything."""
    from host_tools.device import protocol as P
    from host_tools.device.emulator import DeviceSession, QemuDevice

    q = bad_signal(signal_raw)
    noisy = set(range(0, N_EPOCHS, 2))
    with QemuDevice(firmware_elf, timeout_s=240) as dev, DeviceSession(dev.url) as link:
        link.wait_for(lambda m: isinstance(m, P.Hello), 30, what="HELLO")
        stats = stream_with_noise(link, q, noisy, np.random.default_rng(7))
        deadline = time.monotonic() + C.DEFAULT_ESCALATION_TIMEOUT_MS / 1000 + 10  # escalations time out
        while len({f.epoch for f in link.of_type(P.Final)}) < N_EPOCHS and time.monotonic() < deadline:
            time.sleep(0.1)
        n = len(link.messages)
        link.send(P.Ping(0xBADC0DE))
        status = link.wait_for(lambda m: isinstance(m, P.Status), 30, since=n, what="STATUS")
        print(f"noise in {len(noisy)} of {N_EPOCHS} epochs: {stats}, device {status}")
        return {"q": q, "noisy": noisy, "stats": stats, "status": status,
                "results": {r.epoch: r for r in link.of_type(P.Result)},
                "finals": {f.epoch: f for f in link.of_type(P.Final)},
                "escalations": {e.epoch: e for e in link.of_type(P.Escalate)}}


def test_device_gives_artefact_outcomes_and_recovers_noise(noisy_log, model_dir, host_reference):
    """Flat and clipped epochs get artefact outcomes (the host gate's verdicts, bit for bit);
    8-byte noise bursts in every other epoch cost no label: every other epoch's RESULT equals
    the host TFLM output, i.e. what a clean run gives (test_results_equal_host_tflm)."""
    from host_tools.data import quality
    from host_tools.data.filters import filter_device, quantize_model_input
    from tflite_micro.python.tflite_micro import runtime

    results, finals, status = noisy_log["results"], noisy_log["finals"], noisy_log["status"]
    verdicts = quality.recording_verdicts(noisy_log["q"])
    assert quality.verdict_names(verdicts[[4, 5, 8, 9]]) == ["flat", "flat", "clipped", "clipped"]
    assert sorted(results) == sorted(finals) == list(range(N_EPOCHS))  # 100 % labelled
    # the link really was disturbed and really recovered
    # each burst merges with the next frame into one candidate longer than the device's receive
    # buffer (rx_overflows) or into a bad one (garbage_bytes): that SAMPLES frame is lost
    assert status.rx_overflows + status.garbage_bytes >= len(noisy_log["noisy"])
    assert noisy_log["stats"]["nacks"] >= len(noisy_log["noisy"]) - 1  # the last block may be resent as tail
    assert noisy_log["stats"]["resent"] >= len(noisy_log["noisy"]) - 1
    assert status.missing_blocks == 0

    it = runtime.Interpreter.from_bytes((model_dir / "model.tflite").read_bytes(), arena_size=512 * 1024)
    inp, out = it.get_input_details(0), it.get_output_details(0)
    iq = inp["quantization_parameters"]
    y = filter_device(noisy_log["q"].astype(np.float64) * C.SAMPLE_UV_PER_LSB).reshape(N_EPOCHS, C.EPOCH_SAMPLES)
    x = quantize_model_input(y, float(iq["scales"][0]), int(iq["zero_points"][0]))
    for k in range(N_EPOCHS):
        r, f = results[k], finals[k]
        assert not r.incomplete, f"epoch {k} lost samples"
        if verdicts[k] != quality.OK:
            assert r.artefact and r.quality == C.QUALITY_VERDICTS[verdicts[k]]
            assert r.stage == C.STAGE_UNKNOWN and not r.escalated and k not in noisy_log["escalations"]
            assert f.source_name == "artefact"
            continue
        it.set_input(x[k].reshape(inp["shape"]), 0)
        it.invoke()
        raw = np.asarray(it.get_output(0)).reshape(-1)
        assert r.quality == "ok" and r.probs == tuple(int(v) for v in raw), f"epoch {k}"
        if k < 4:  # before the edited epochs the stream is test_results_equal_host_tflm's
            assert r.probs == tuple(int(v) for v in host_reference["raw"][k])
