"""host_tools.device.protocol: framing, messages, corruption handling, and agreement with the C core.

The cross-language tests run firmware/tests/frame_tool (built with host gcc by the Makefile in
firmware/tests): C-encoded frames must decode in Python and equal Python's encoding byte for byte,
and Python-encoded streams (clean and corrupted) must give the same frames and the same
counters in the C parser.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.errors import SleepEdgeError

REPO_ROOT = Path(__file__).resolve().parent.parent
FW_TESTS = REPO_ROOT / "firmware" / "tests"
BUILD = REPO_ROOT / "firmware" / "build" / "host-tests"


# --- CRC and COBS ----------------------------------------------------------------------------

def test_crc16_ccitt_false_check_value():
    assert P.crc16(b"123456789") == 0x29B1
    assert P.crc16(b"") == 0xFFFF
    # Residue property of a non-reflected CRC without xor-out: crc(msg || crc_be) == 0.
    rng = np.random.default_rng(0)
    for n in (1, 7, 100):
        msg = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert P.crc16(msg + struct.pack(">H", P.crc16(msg))) == 0


@pytest.mark.parametrize(
    "raw, enc",
    [
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    ],
)
def test_cobs_known_vectors(raw, enc):
    assert P.cobs_encode(raw) == enc
    assert P.cobs_decode(enc) == raw


def test_cobs_round_trip_random():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(0, 1500))
        density = rng.uniform(0, 1)
        data = rng.integers(1, 256, n, dtype=np.uint8)
        data[rng.uniform(size=n) < density * 0.3] = 0
        raw = data.tobytes()
        enc = P.cobs_encode(raw)
        assert 0 not in enc
        assert len(enc) <= max(1, n + (n + 253) // 254)
        assert P.cobs_decode(enc) == raw


@pytest.mark.parametrize("bad", [b"", b"\x05\x11\x22", b"\x03\x11\x00", b"\x00"])
def test_cobs_decode_rejects_malformed(bad):
    with pytest.raises(P.ProtocolError):
        P.cobs_decode(bad)


# --- frames ----------------------------------------------------------------------------------

def test_frame_layout_is_as_documented():
    payload = bytes([1, 2, 3])
    frame = P.encode_frame(0x13, 0x7F, payload)
    assert frame.endswith(b"\x00") and 0 not in frame[:-1]
    body = P.cobs_decode(frame[:-1])
    assert body[:4] == bytes([0x13, 0x7F, 3, 0])  # type, seq, len u16 little-endian
    assert body[4:7] == payload
    assert body[7:] == struct.pack("<H", P.crc16(body[:7]))


def test_encode_frame_rejects_bad_arguments():
    with pytest.raises(P.ProtocolError):
        P.encode_frame(0x10, 0, bytes(C.MAX_PAYLOAD_BYTES + 1))
    with pytest.raises(P.ProtocolError):
        P.encode_frame(256, 0, b"")
    with pytest.raises(P.ProtocolError):
        P.encode_frame(1, -1, b"")
    assert issubclass(P.ProtocolError, SleepEdgeError)


def _messages() -> list:
    rng = np.random.default_rng(2)
    esc = rng.integers(-32768, 32768, C.EPOCH_SAMPLES).astype(np.int16)
    blk = rng.integers(-32768, 32768, C.SAMPLES_PER_BLOCK).astype(np.int16)
    return [
        P.Hello(1, "0.1.0", 0xDEADBEEF, 100, 3000, np.float32(0.6).item(), 5000),
        P.Result(12345, 2, True, 0, (-128, -100, 20, 127, 0), 0.5),
        P.Result(7, C.STAGE_UNKNOWN, False, P.FLAG_INCOMPLETE, (0, 0, 0, 0, 0), 0.0),
        P.Escalate(99, esc),
        P.Final(4_000_000_000, 4, 1),
        P.Status(*range(1, 15)),
        P.Error(P.ERR_UNKNOWN_EPOCH, 77),
        P.Pong(0xCAFEF00D),
        P.Samples(30, blk),
        P.SamplesArq(31, blk),
        P.Nack(4_000_000_000, 3),
        P.Result(8, C.STAGE_UNKNOWN, False, 2 << P.QUALITY_SHIFT, (0, 0, 0, 0, 0), 0.0),
        P.CloudLabel(12, 3),
        P.Config(np.float32(0.75).item(), 2500),
        P.Ping(1),
    ]


@pytest.mark.parametrize("msg", _messages(), ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg):
    frame = P.encode_message(msg, seq=200)
    frames = P.FrameDecoder().feed(frame)
    assert len(frames) == 1 and frames[0].seq == 200 and frames[0].ftype == msg.FTYPE
    assert P.decode_message(frames[0]) == msg


def test_message_classes_use_the_shared_frame_numbers():
    names = {P.Hello: "HELLO", P.Result: "RESULT", P.Escalate: "ESCALATE", P.Final: "FINAL",
             P.Status: "STATUS", P.Error: "ERROR", P.Pong: "PONG", P.Samples: "SAMPLES",
             P.CloudLabel: "CLOUD_LABEL", P.Config: "CONFIG", P.Ping: "PING"}
    for cls, name in names.items():
        assert cls.FTYPE == C.FRAME_TYPES[name], name
    assert sorted(P.MESSAGE_TYPES) == sorted(C.FRAME_TYPES.values())


def test_payload_sizes_match_the_spec_table():
    sizes = {type(m).__name__: len(m.payload()) for m in _messages()}
    assert sizes["Hello"] == 1 + 8 + 4 + 2 + 2 + 4 + 4
    assert sizes["Result"] == 4 + 1 + 1 + 1 + 5 + 4
    assert sizes["Escalate"] == 6 + 2 * C.EPOCH_SAMPLES <= C.MAX_PAYLOAD_BYTES
    assert sizes["Final"] == 6 and sizes["Status"] == 56 and sizes["Error"] == 5 and sizes["Pong"] == 4
    assert sizes["Samples"] == 6 + 2 * C.SAMPLES_PER_BLOCK == P.DEVICE_RX_MAX_PAYLOAD
    assert sizes["CloudLabel"] == 5 and sizes["Config"] == 8 and sizes["Ping"] == 4


def test_builders_validate_their_input():
    with pytest.raises(P.ProtocolError):
        P.cloud_label_payload(1, 5)
    with pytest.raises(P.ProtocolError):
        P.cloud_label_payload(-1, 0)
    for bad in (math.nan, -0.01, 1.01):
        with pytest.raises(P.ProtocolError):
            P.config_payload(bad, 1000)
    with pytest.raises(P.ProtocolError):
        P.config_payload(0.5, 0)
    with pytest.raises(P.ProtocolError):
        P.ping_payload(2**32)
    with pytest.raises(P.ProtocolError):
        P.samples_payload(0, np.array([40000]))
    with pytest.raises(P.ProtocolError):
        P.samples_payload(0, np.zeros((2, 50), dtype=np.int16))
    with pytest.raises(P.ProtocolError):
        P.status_payload(not_a_counter=1)
    # Integer-valued non-int16 arrays are accepted and converted.
    assert P.samples_payload(3, np.arange(100, dtype=np.int64)) == P.samples_payload(3, np.arange(100, dtype=np.int16))


def test_decode_message_rejects_bad_payloads():
    with pytest.raises(P.ProtocolError, match="unknown frame type"):
        P.decode_message(P.Frame(0x55, 0, b""))
    with pytest.raises(P.ProtocolError, match="FINAL"):
        P.decode_message(P.Frame(C.FRAME_TYPES["FINAL"], 0, b"\x00" * 5))
    # ESCALATE whose sample count disagrees with its length.
    with pytest.raises(P.ProtocolError):
        P.decode_message(P.Frame(C.FRAME_TYPES["ESCALATE"], 0, struct.pack("<IH", 1, 10) + bytes(8)))


def test_error_describe_and_final_source_names():
    assert "not pending" in P.Error(P.ERR_UNKNOWN_EPOCH, 5).describe()
    assert [P.Final(0, 0, s).source_name for s in range(5)] == list(C.FINAL_SOURCES)
    assert P.Final(0, 0, 9).source_name == "?9"


def test_result_quality_verdict_in_flags():
    for code, name in enumerate(C.QUALITY_VERDICTS):
        r = P.Result(3, C.STAGE_UNKNOWN if code else 1, False, code << P.QUALITY_SHIFT, (0,) * 5, 0.0)
        assert r.quality == name and r.artefact == (code != 0) and not r.incomplete
    assert P.Result(3, 1, False, P.FLAG_INCOMPLETE, (0,) * 5, 0.0).quality == "ok"


def test_rewinder_goes_back_to_the_earliest_nacked_block():
    rw = P.Rewinder()
    assert rw.next_block(10) == 10
    rw.on_nack(P.Nack(7, 2))
    rw.on_nack(P.Nack(8, 1))
    assert rw.next_block(12) == 7 and rw.resent_blocks == 5 and rw.nacks == 2
    assert rw.next_block(8) == 8  # consumed
    rw.on_nack(P.Nack(20, 1))  # ahead of the send position: nothing to resend
    assert rw.next_block(15) == 15 and rw.resent_blocks == 5


# --- FrameDecoder: streaming and corruption --------------------------------------------------

def _stream(n: int = 20, seed: int = 3) -> tuple[bytes, list[P.Frame]]:
    rng = np.random.default_rng(seed)
    frames, out = [], b""
    for i in range(n):
        payload = rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes()
        f = P.Frame(int(rng.integers(0, 256)), i % 256, payload)
        frames.append(f)
        out += P.encode_frame(f.ftype, f.seq, f.payload)
    return out, frames


def test_decoder_any_split_gives_the_same_frames():
    data, frames = _stream()
    rng = np.random.default_rng(4)
    for _ in range(20):
        dec = P.FrameDecoder()
        cuts = sorted(rng.integers(0, len(data), 30))
        got = []
        for a, b in zip([0, *cuts], [*cuts, len(data)]):
            got += dec.feed(data[a:b])
        assert got == frames
        assert dec.frames == len(frames) and dec.garbage_bytes == dec.bad_crc == dec.oversize == 0
    dec = P.FrameDecoder()
    assert [f for i in range(len(data)) for f in dec.feed(data[i:i + 1])] == frames


def test_decoder_garbage_between_frames_and_zero_length():
    f1 = P.encode_frame(0x12, 1, b"abc")
    dec = P.FrameDecoder()
    got = dec.feed(b"\x00\x00" + b"noise" + b"\x00" + f1 + b"xy\x00" + f1 + b"\x00\x00")
    assert len(got) == 2 and dec.garbage_bytes == 7 and dec.bad_crc == 0
    # An empty-payload frame is valid.
    assert dec.feed(P.encode_frame(0x13, 0, b"")) == [P.Frame(0x13, 0, b"")]


def test_decoder_bad_crc_truncated_and_resync():
    frame = P.encode_frame(0x10, 5, bytes(range(1, 200)))
    dec = P.FrameDecoder()
    bad = bytearray(frame)
    bad[50] ^= 0x01  # payload byte stays non-zero: COBS intact, CRC wrong
    assert bad[50] != 0
    assert dec.feed(bytes(bad)) == [] and dec.bad_crc == 1
    for cut in (1, 3, 10, len(frame) - 2):
        assert dec.feed(frame[:cut] + b"\x00") == []
    assert dec.frames == 0 and dec.garbage_bytes > 0
    assert len(dec.feed(frame)) == 1


def test_decoder_oversize_dropped_until_next_delimiter():
    dec = P.FrameDecoder(max_payload=P.DEVICE_RX_MAX_PAYLOAD)
    big = P.encode_frame(0x10, 0, bytes(range(1, 256)) * 2)
    ok = P.encode_frame(0x10, 1, bytes(P.DEVICE_RX_MAX_PAYLOAD))
    assert dec.feed(big + ok) == [P.Frame(0x10, 1, bytes(P.DEVICE_RX_MAX_PAYLOAD))]
    assert dec.oversize == 1
    assert dec.feed(b"\x55" * 100_000) == [] and dec.oversize == 2
    assert len(dec.feed(b"\x00" + ok)) == 1


# --- cross-language --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frame_tool() -> Path:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.fail("host gcc and make are needed to build firmware/tests")
    r = subprocess.run(["make", "-s", "-C", str(FW_TESTS), f"BUILD={BUILD}", str(BUILD / "frame_tool")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return BUILD / "frame_tool"


def _c_decode(tool: Path, data: bytes, cap: int = C.MAX_PAYLOAD_BYTES) -> tuple[list[P.Frame], tuple[int, ...]]:
    r = subprocess.run([str(tool), "decode", str(cap)], input=data, capture_output=True, check=True)
    frames, counters = [], ()
    for line in r.stdout.decode().splitlines():
        kind, *rest = line.split(" ")
        if kind == "F":
            frames.append(P.Frame(int(rest[0]), int(rest[1]), bytes.fromhex(rest[2]) if len(rest) > 2 else b""))
        else:
            counters = tuple(int(v) for v in rest)
    return frames, counters


def test_c_encoded_frames_equal_python_encoding(frame_tool):
    msgs = _messages()
    lines, expected = [], b""
    for seq, m in enumerate(msgs):
        lines.append(f"{m.FTYPE} {seq} {m.payload().hex()}")
        expected += P.encode_message(m, seq)
    for n in (0, 1, 247, 248, 253, 254, 255, 508, C.MAX_PAYLOAD_BYTES):  # COBS block boundaries
        payload = bytes((i % 255) + 1 for i in range(n))
        lines.append(f"16 {n % 256} {payload.hex()}")
        expected += P.encode_frame(16, n % 256, payload)
    r = subprocess.run([str(frame_tool), "encode"], input=("\n".join(lines) + "\n").encode(),
                       capture_output=True, check=True)
    assert r.stdout == expected
    decoded = [P.decode_message(f) for f in P.FrameDecoder().feed(r.stdout)[: len(msgs)]]
    assert decoded == msgs


def test_python_encoded_stream_decodes_identically_in_c(frame_tool):
    data, frames = _stream(40, seed=5)
    got, counters = _c_decode(frame_tool, data)
    assert got == frames
    assert counters == (len(frames), 0, 0, 0)


def test_corrupted_stream_same_frames_and_counters_in_c_and_python(frame_tool):
    rng = np.random.default_rng(6)
    data, _ = _stream(60, seed=7)
    buf = bytearray(data)
    for _ in range(40):  # bit flips, garbage runs, deletions
        pos = int(rng.integers(0, len(buf)))
        kind = rng.integers(0, 3)
        if kind == 0:
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            buf[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 20)), dtype=np.uint8).tobytes()
        else:
            del buf[pos:pos + int(rng.integers(1, 10))]
    buf += b"\x01" * 7000 + b"\x00"  # an oversize candidate
    corrupted = bytes(buf)
    for cap in (C.MAX_PAYLOAD_BYTES, P.DEVICE_RX_MAX_PAYLOAD):
        dec = P.FrameDecoder(max_payload=cap)
        py_frames = dec.feed(corrupted)
        c_frames, counters = _c_decode(frame_tool, corrupted, cap)
        assert c_frames == py_frames
        assert counters == (dec.frames, dec.bad_crc, dec.garbage_bytes, dec.oversize)
        assert dec.bad_crc + dec.garbage_bytes > 0 and dec.oversize >= 1


def test_c_and_python_constants_agree(frame_tool):
    r = subprocess.run([str(frame_tool), "constants"], capture_output=True, text=True, check=True)
    c = {k: int(v) for k, v in (line.split() for line in r.stdout.splitlines())}
    assert c["ERR_UNKNOWN_TYPE"] == P.ERR_UNKNOWN_TYPE
    assert c["ERR_BAD_LENGTH"] == P.ERR_BAD_LENGTH
    assert c["ERR_UNKNOWN_EPOCH"] == P.ERR_UNKNOWN_EPOCH
    assert c["ERR_BAD_VALUE"] == P.ERR_BAD_VALUE
    assert c["ERR_MODEL"] == P.ERR_MODEL
    assert c["FLAG_INCOMPLETE"] == P.FLAG_INCOMPLETE and c["FLAG_MODEL_ERROR"] == P.FLAG_MODEL_ERROR
    assert c["RX_MAX_PAYLOAD"] == P.DEVICE_RX_MAX_PAYLOAD
    assert c["STATUS_FIELDS"] == len(P.STATUS_FIELDS)
    assert c["QUALITY_SHIFT"] == P.QUALITY_SHIFT and c["QUALITY_MASK"] == P.QUALITY_MASK
    # The CONFIG limits the Python builder enforces are the device's.
    P.config_payload(0.5, c["MAX_TIMEOUT_MS"])
    P.config_payload(0.5, c["MIN_TIMEOUT_MS"])
    with pytest.raises(P.ProtocolError):
        P.config_payload(0.5, c["MAX_TIMEOUT_MS"] + 1)
