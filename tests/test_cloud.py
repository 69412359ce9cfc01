"""Cloud escalation service: auth, strict validation, micro-batching, a 20-device load test."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest

from host_tools import constants as C
from host_tools.cloud.service import MicroBatcher, create_app, parse_classify_request, RequestError, uvicorn_options
from tests.fake_device import StandInCloudModel

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(model: StandInCloudModel, log_level: str = "error", **kw: float) -> Iterator[str]:
    """Run the real app under uvicorn, as `sleepedge cloud serve` does, in a thread on 127.0.0.1;
    yields its base URL."""
    import uvicorn

    port = free_port()
    app = create_app(model, TOKEN, **kw)
    options = uvicorn_options(kw["read_timeout_s"]) if "read_timeout_s" in kw else uvicorn_options()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def epoch_samples(seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(C.EPOCH_SAMPLES) * 200 * (1 + seed % 7)).astype(np.int16).tolist()


def body(seed: int = 0, **override: object) -> dict:
    doc = {"device_id": "dev-0", "epoch": seed, "samples": epoch_samples(seed), "uv_per_lsb": 0.25}
    doc.update(override)
    return doc


@pytest.fixture(scope="module")
def model() -> StandInCloudModel:
    return StandInCloudModel()


@pytest.fixture(scope="module")
def client(model: StandInCloudModel) -> Iterator[httpx.Client]:
    with serve(model, max_batch=8, max_wait_ms=5) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_health_and_classify_answer_matches_model(client: httpx.Client, model: StandInCloudModel) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": model.name}
    r = client.post("/v1/classify", json=body(3), headers=AUTH)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"epoch", "stage", "stage_index", "probs", "model", "context_used"}
    assert doc["epoch"] == 3 and doc["model"] == model.name
    assert doc["context_used"] is False  # a one-epoch model ignores any history
    expected = model.predict_proba(np.asarray(epoch_samples(3), np.float32)[None] * 0.25)[0]
    np.testing.assert_allclose(doc["probs"], expected, rtol=1e-5)
    assert doc["stage_index"] == int(np.argmax(expected))
    assert doc["stage"] == C.STAGES[doc["stage_index"]]


@pytest.mark.parametrize("headers,why", [({}, "missing"), ({"Authorization": "Bearer nope"}, "wrong"),
                                         ({"Authorization": TOKEN}, "wrong")])
def test_auth_required(client: httpx.Client, headers: dict, why: str) -> None:
    r = client.post("/v1/classify", json=body(), headers=headers)
    assert r.status_code == 401
    assert why in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "override,status,fragment",
    [
        ({"samples": list(range(2999))}, 422, "exactly 3000"),
        ({"samples": [0] * 2999 + [40000]}, 422, "samples[2999] = 40000"),
        ({"samples": [0] * 10 + [1.5] + [0] * 2989}, 422, "samples[10] must be an integer"),
        ({"samples": [True] * 3000}, 422, "samples[0] must be an integer"),
        ({"samples": "abc"}, 422, "must be a list"),
        ({"epoch": "7"}, 422, "epoch must be an integer"),
        ({"epoch": -1}, 422, "epoch must be an integer"),
        ({"epoch": True}, 422, "epoch must be an integer"),
        ({"device_id": 5}, 422, "device_id"),
        ({"uv_per_lsb": 1.0}, 422, "uv_per_lsb must be 0.25"),
        ({"extra": 1}, 422, "unknown field(s): extra"),
    ],
)
def test_validation_errors(client: httpx.Client, override: dict, status: int, fragment: str) -> None:
    r = client.post("/v1/classify", json=body(**override), headers=AUTH)
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


def test_malformed_bodies(client: httpx.Client) -> None:
    bad_json = client.post("/v1/classify", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["detail"]
    not_obj = client.post("/v1/classify", json=[1, 2], headers=AUTH)
    assert not_obj.status_code == 422 and "JSON object" in not_obj.json()["detail"]
    missing = client.post("/v1/classify", json={"device_id": "x"}, headers=AUTH)
    assert missing.status_code == 422 and "epoch, samples, uv_per_lsb" in missing.json()["detail"]
    huge = client.post("/v1/classify", content=b" " * 200_000, headers={**AUTH, "content-type": "application/json"})
    assert huge.status_code == 413
    wrong_type = client.post("/v1/classify", content=json.dumps(body()), headers={**AUTH, "content-type": "text/plain"})
    assert wrong_type.status_code == 415


def test_parse_rejects_nan_scale() -> None:
    doc = body()
    raw = json.dumps(doc).replace('"uv_per_lsb": 0.25', '"uv_per_lsb": NaN').encode()
    with pytest.raises(RequestError, match="uv_per_lsb"):
        parse_classify_request(raw)


def test_microbatcher_batches_concurrent_requests() -> None:
    """Concurrent requests share model calls, and every answer belongs to its own epoch."""
    model = StandInCloudModel(delay_s=0.05)
    batcher = MicroBatcher(model, max_batch=8, max_wait_ms=20)
    xs = [np.asarray(epoch_samples(i), np.float32) * 0.25 for i in range(24)]

    async def main() -> list[np.ndarray]:
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.classify(x) for x in xs))
        finally:
            await batcher.stop()

    answers = asyncio.run(main())
    out = [p for p, _ in answers]
    assert not any(used for _, used in answers)
    assert model.calls == batcher.stats.model_calls
    assert model.calls <= 4, model.batch_sizes  # 24 requests, batches of up to 8
    assert max(model.batch_sizes) == 8 and sum(model.batch_sizes) == 24
    reference = StandInCloudModel()
    for x, p in zip(xs, out):
        np.testing.assert_allclose(p, reference.predict_proba(x[None])[0], rtol=1e-5)


def test_microbatcher_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(StandInCloudModel(), max_batch=0)
    with pytest.raises(ValueError):
        MicroBatcher(StandInCloudModel(), max_wait_ms=-1)


def test_load_20_devices_no_request_lost() -> None:
    """20 simulated devices, 10 escalations each, concurrently: all answered, correctly, in time."""
    model = StandInCloudModel(delay_s=0.01)
    reference = StandInCloudModel()
    n_dev, per_dev = 20, 10

    async def device(c: httpx.AsyncClient, d: int) -> list[tuple[int, int, int]]:
        got = []
        for k in range(per_dev):
            seed = d * 100 + k
            r = await c.post("/v1/classify", json=body(seed, device_id=f"dev-{d}", epoch=seed), headers=AUTH)
            assert r.status_code == 200, r.text
            got.append((seed, r.json()["epoch"], r.json()["stage_index"]))
        return got

    async def main(url: str) -> list[list[tuple[int, int, int]]]:
        async with httpx.AsyncClient(base_url=url, timeout=20) as c:
            return await asyncio.gather(*(device(c, d) for d in range(n_dev)))

    with serve(model, max_batch=32, max_wait_ms=10) as url:
        t0 = time.monotonic()
        results = asyncio.run(main(url))
        elapsed = time.monotonic() - t0
    flat = [r for dev in results for r in dev]
    assert len(flat) == n_dev * per_dev
    for seed, epoch, stage in flat:
        assert epoch == seed
        assert stage == reference.stage_of(np.asarray(epoch_samples(seed)))
    assert model.calls < n_dev * per_dev / 2, f"batching did not batch: {model.calls} calls"
    assert elapsed < 30, f"200 requests took {elapsed:.1f} s"


def test_cli_workers_subprocess(repo_root) -> None:
    """`sleepedge cloud serve --workers 2` really serves, token from the environment."""
    port = free_port()
    env = {**os.environ, "SLEEPEDGE_CLOUD_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "cloud", "serve", "--model", "py:tests.fake_device:make_model",
         "--port", str(port), "--workers", "2"],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "service did not come up"
            time.sleep(0.2)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json=body(5), headers=AUTH, timeout=10)
        assert r.status_code == 200 and r.json()["epoch"] == 5
        assert httpx.post(f"http://127.0.0.1:{port}/v1/classify", json=body(5), timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(20)


def test_cli_errors_are_one_line(repo_root) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLEEPEDGE_CLOUD_TOKEN"}
    r = subprocess.run([sys.executable, "-m", "host_tools.cli", "cloud", "serve", "--model", "py:tests.fake_device:make_model"],
                       cwd=repo_root, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no token" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "host_tools.cli", "cloud", "serve", "--token", "t", "--model", "/nonexistent/dir"],
                       cwd=repo_root, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "/nonexistent/dir" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_rejects_bad_read_timeout(repo_root) -> None:
    r = subprocess.run([sys.executable, "-m", "host_tools.cli", "cloud", "serve", "--token", "t", "--model",
                        "py:tests.fake_device:make_model", "--read-timeout", "0"],
                       cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--read-timeout" in r.stderr and len(r.stderr.strip().splitlines()) == 1
