"""The cloud service under abuse (issue 11, item 4): oversized and chunked bodies, deep JSON, slow
and idle clients, clients that disconnect. Runs `sleepedge cloud serve` as a subprocess (fake model)
on 127.0.0.1 and talks raw HTTP to it, so the service's own memory and log can be read."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from host_tools.cloud.service import MAX_BODY_BYTES, MAX_JSON_DEPTH, RequestError, json_depth, parse_classify_request
from tests.test_cloud import AUTH, TOKEN, body, free_port

READ_TIMEOUT_S = 1.0


@dataclass
class Service:
    pid: int
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def peak_rss_kb(self) -> int:
        """VmHWM: the process's peak resident memory so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")


@pytest.fixture(scope="module")
def service(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    log = tmp_path_factory.mktemp("cloud") / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "cloud", "serve", "--model", "py:tests.fake_device:make_model",
             "--port", str(port), "--token", TOKEN, "--read-timeout", str(READ_TIMEOUT_S)],
            cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "service did not come up"
            time.sleep(0.1)
        yield Service(proc.pid, port, log)
    finally:
        proc.terminate()
        proc.wait(20)


def request_head(port: int, extra: str) -> bytes:
    return (f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def read_response(sock: socket.socket, timeout_s: float) -> bytes:
    """What the server sent until it closed the connection (or the timeout)."""
    sock.settimeout(timeout_s)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def assert_no_traceback(service: Service) -> None:
    text = service.log_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]


def test_content_length_over_limit_refused_before_reading(service: Service) -> None:
    """A 250 MB Content-Length is answered 413 at once, without the service waiting for the body."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", service.port)) as s:
        s.sendall(request_head(service.port, "Content-Length: 250000000\r\n"))
        got = read_response(s, timeout_s=3)
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert b"connection: close" in got.lower()
    assert time.monotonic() - t0 < 2.5


def test_chunked_100mb_body_refused_with_bounded_memory(service: Service) -> None:
    """A 100 MB chunked body (no Content-Length) is cut off at the limit: 413, and the service's
    peak memory grows by less than 50 MB."""
    before_kb = service.peak_rss_kb()
    chunk = b"7" * (1 << 20)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    got = b""
    with socket.create_connection(("127.0.0.1", service.port)) as s:
        s.sendall(request_head(service.port, "Transfer-Encoding: chunked\r\n"))
        s.settimeout(5)
        try:
            while sent < 100 * (1 << 20):
                if select.select([s], [], [], 0)[0]:
                    break  # the service answered (or closed) before the body ended
                s.sendall(frame)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # it closed while we were still sending: what it answered is in our receive buffer
        got = read_response(s, timeout_s=3)
    grown_mb = (service.peak_rss_kb() - before_kb) / 1024
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert b"over the limit" in got
    assert grown_mb < 50, f"peak RSS grew by {grown_mb:.0f} MB"
    assert sent < 50 * (1 << 20), f"the service kept reading: {sent >> 20} MB sent"
    assert_no_traceback(service)


@pytest.mark.parametrize("depth", [1000, 60000])
def test_deep_json_is_400(service: Service, depth: int) -> None:
    raw = b"[" * depth + b"]" * depth
    assert len(raw) <= MAX_BODY_BYTES
    r = httpx.post(f"{service.url}/v1/classify", content=raw, headers={**AUTH, "content-type": "application/json"},
                   timeout=10)
    assert r.status_code == 400 and f"{depth} levels deep" in r.json()["detail"]
    nested = json.dumps(body(1)).encode()[:-1] + b', "edge_history": ' + b"[" * 50 + b"]" * 50 + b"}"
    with pytest.raises(RequestError, match="50 levels deep|51 levels deep") as exc:
        parse_classify_request(nested)
    assert exc.value.status == 400
    assert_no_traceback(service)


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert [json_depth(t) for t in (b"7", b"[1, 2]", b'{"a": [1]}', b'{"a": "[[[{{", "b": [[]]}')] == [0, 1, 2, 3]
    assert json_depth(b'["\\"[[[", "\\\\", [[]]]') == 3  # escaped quote and backslash inside strings
    assert json_depth(b'"' + b"\\\"[" * 40_000) == 0  # an unterminated string: linear, and no count
    doc = body(2, device_id="[[[[[[[[[[[[{{{{{{{{")  # deep-looking, but only a string
    assert parse_classify_request(json.dumps(doc).encode()).device_id == doc["device_id"]
    assert json_depth(b"[" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1


def test_huge_integer_is_400_not_500(service: Service) -> None:
    """Python refuses to parse integers of more than 4300 digits (ValueError, not JSONDecodeError)."""
    raw = json.dumps(body(1)).replace('"epoch": 1', '"epoch": ' + "9" * 5000).encode()
    r = httpx.post(f"{service.url}/v1/classify", content=raw, headers={**AUTH, "content-type": "application/json"},
                   timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


def test_slow_and_idle_clients_closed_within_timeout_while_normal_requests_pass(service: Service) -> None:
    """50 sockets that send nothing, trickle their headers, or trickle their body are all closed
    within the read timeout (plus scheduling slack); normal requests meanwhile are answered."""
    kinds = ["idle"] * 15 + ["headers"] * 15 + ["body"] * 20
    head = request_head(service.port, "Content-Length: 20000\r\n")
    socks = [socket.create_connection(("127.0.0.1", service.port)) for _ in kinds]
    for s, kind in zip(socks, kinds):
        s.setblocking(False)
        if kind == "body":
            s.sendall(head + b'{"device_id": ')
    t0 = time.monotonic()
    normal: list[tuple[int, float]] = []

    def normal_requests() -> None:
        with httpx.Client(base_url=service.url, timeout=10) as c:
            for k in range(10):
                t = time.monotonic()
                r = c.post("/v1/classify", json=body(k), headers=AUTH)
                normal.append((r.status_code, time.monotonic() - t))

    worker = threading.Thread(target=normal_requests)
    worker.start()
    closed_after: dict[int, float] = {}
    answers: dict[int, bytes] = {}
    offset = {i: 0 for i in range(len(kinds))}
    try:
        while len(closed_after) < len(kinds) and time.monotonic() - t0 < 3 * READ_TIMEOUT_S + 2:
            for i, (s, kind) in enumerate(zip(socks, kinds)):
                if i in closed_after:
                    continue
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    data = None
                except ConnectionResetError:
                    data = b""
                if data is not None:
                    answers[i] = answers.get(i, b"") + data
                    if not data:
                        closed_after[i] = time.monotonic() - t0
                    continue
                try:  # one more byte of the request, every 0.1 s
                    if kind == "headers":
                        s.send(head[offset[i]:offset[i] + 1])
                        offset[i] += 1
                    elif kind == "body":
                        s.send(b" ")
                except (BrokenPipeError, ConnectionResetError):
                    closed_after[i] = time.monotonic() - t0
            time.sleep(0.1)
    finally:
        worker.join(20)
        for s in socks:
            s.close()
    still_open = [kinds[i] for i in range(len(kinds)) if i not in closed_after]
    assert not still_open, f"{len(still_open)} slow clients still connected: {still_open}"
    assert max(closed_after.values()) < READ_TIMEOUT_S + 1.5, sorted(closed_after.values())  # slack: 2 busy cores
    for i, kind in enumerate(kinds):
        if kind == "body":
            assert answers.get(i, b"").startswith(b"HTTP/1.1 408"), answers.get(i, b"")[:200]
    assert len(normal) == 10 and all(status == 200 for status, _ in normal), normal
    assert max(t for _, t in normal) < 2 * READ_TIMEOUT_S, normal  # not held up by the slow ones
    assert_no_traceback(service)


def test_client_disconnect_is_one_log_line(service: Service) -> None:
    before = service.log_text().count("disconnected")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", service.port)) as s:
            s.sendall(request_head(service.port, "Content-Length: 20000\r\n") + b'{"device_id": "x"')
    deadline = time.monotonic() + 5
    while service.log_text().count("disconnected") < before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [ln for ln in service.log_text().splitlines() if "disconnected" in ln]
    assert len(lines) == before + 3, service.log_text()[-3000:]
    assert all(re.search(r"127\.0\.0\.1:\d+ - client disconnected after \d+ bytes of its request body$", ln)
               for ln in lines[-3:]), lines
    assert_no_traceback(service)
