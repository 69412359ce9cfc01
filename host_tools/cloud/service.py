"""``sleepedge cloud serve``: the HTTP service that scores escalated epochs with the cloud model.

API (docs/architecture.md, "Cloud service")::

    POST /v1/classify   Authorization: Bearer <token>
        {"device_id": str, "epoch": int, "samples": [3000 ints in int16 range], "uv_per_lsb": 0.25,
         optional, together: "edge_model": "8 hex digits" (HELLO's model hash),
                             "edge_history": [[5 ints in int8 range] or null, ...]}
     -> {"epoch": int, "stage": "N2", "stage_index": 2, "probs": [5 floats], "model": str,
         "context_used": bool}
    GET /health -> {"status": "ok", "model": str}

``edge_history`` holds the device's raw RESULT outputs for the epochs up to and including this
one, oldest first (null where the host has none). A context model (``host_tools.cloud.model``)
uses it when ``edge_model`` is the edge model it was trained on; otherwise, and for models
without a head, the answer comes from the epoch alone (``context_used: false``).

Abuse limits: a body over ``MAX_BODY_BYTES`` is refused with 413 by its Content-Length before
any of it is read, or, without one (chunked), as soon as the bytes read pass the limit; JSON
nested deeper than ``MAX_JSON_DEPTH`` is refused with 400 before parsing; a client that does not
deliver its headers within ``--read-timeout`` seconds (``http_guard.GuardedH11Protocol``) is
disconnected, and one that does not deliver its body within as long again gets 408. Refusals of
an unread body close the connection so the rest of it is never read. A client that disconnects
mid-request is one log line.

Concurrent requests are micro-batched: an asyncio queue gathers up to ``max_batch`` requests or
waits ``max_wait_ms`` after the first one, then makes one model call for all of them (a
convolutional model scores 32 epochs in little more time than one). The model runs in a worker
thread so the event loop keeps accepting requests while it computes. For more throughput run
several uvicorn workers (``--workers``) or several instances behind a load balancer.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import importlib
import json
import logging
import math
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from host_tools import constants as C
from host_tools.cloud.model import EdgeHistory
from host_tools.errors import SleepEdgeError

if TYPE_CHECKING:  # fastapi is a heavy import: only for annotations here
    from fastapi import FastAPI, Request

TOKEN_ENV = "SLEEPEDGE_CLOUD_TOKEN"
#: Environment used to hand the configuration to uvicorn worker processes (``--workers N``).
_ENV_MODEL = "SLEEPEDGE_CLOUD_MODEL"
_ENV_MAX_BATCH = "SLEEPEDGE_CLOUD_MAX_BATCH"
_ENV_MAX_WAIT = "SLEEPEDGE_CLOUD_MAX_WAIT_MS"
_ENV_READ_TIMEOUT = "SLEEPEDGE_CLOUD_READ_TIMEOUT_S"
#: A valid request is ~20 KB of JSON; anything far larger is refused before (or while) reading it.
MAX_BODY_BYTES = 128 * 1024
#: A valid request nests 3 deep (object > edge_history > entry); deeper JSON is refused unparsed,
#: so Python's recursive JSON parser never nears its recursion limit.
MAX_JSON_DEPTH = 8
#: Seconds a client has for its request headers, and again for its body.
DEFAULT_READ_TIMEOUT_S = 10.0
#: uvicorn protocol class (by name: it imports uvicorn) that enforces the header deadline.
UVICORN_HTTP_PROTOCOL = "host_tools.cloud.http_guard:GuardedH11Protocol"
MAX_DEVICE_ID_CHARS = 128
_REQUEST_KEYS = {"device_id", "epoch", "samples", "uv_per_lsb"}
_HISTORY_KEYS = {"edge_model", "edge_history"}
#: Most edge_history entries accepted (the proxy sends constants.CLOUD_HISTORY_EPOCHS).
MAX_HISTORY_ENTRIES = 64
log = logging.getLogger("uvicorn.error")  # uvicorn configures it: same format and level as its own


class CloudModelLike(Protocol):
    """What the service needs from a model (``host_tools.learn.models.CloudModel`` provides it).

    A model that can use the device's edge history also has ``predict_with_history(x_uv,
    histories) -> (probs, used)`` (``host_tools.cloud.model.ContextCloudModel``).
    """

    name: str

    def predict_proba(self, x_uv: np.ndarray) -> np.ndarray:  # (N, 3000) float32 -> (N, 5)
        ...


@dataclass(frozen=True)
class ClassifyRequest:
    """A validated ``/v1/classify`` body."""

    device_id: str
    epoch: int
    x_uv: np.ndarray  #: float32 (3000,) microvolts
    history: EdgeHistory | None = None


class RequestError(ValueError):
    """A request that fails validation; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- validation ------------------------------------------------------------------------------

def parse_classify_request(body: bytes) -> ClassifyRequest:
    """Validate a ``/v1/classify`` body strictly.

    Parameters
    ----------
    body
        The raw request body.

    Returns
    -------
    ClassifyRequest
        Device id, epoch number, the epoch in microvolts (float32, (3000,)) and the edge
        history when the body carries one.

    Raises
    ------
    RequestError
        With status 400 (not JSON, or nested deeper than ``MAX_JSON_DEPTH``), 413 (too large) or
        422 (wrong field, type or range), and a message naming the offending field.
    """
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(400, f"request body nests JSON {depth} levels deep; the limit is {MAX_JSON_DEPTH}")
    try:
        doc = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, or an integer of thousands of digits
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError(422, f"request body must be a JSON object, got {type(doc).__name__}")
    missing = sorted(_REQUEST_KEYS - doc.keys())
    if missing:
        raise RequestError(422, f"missing field(s): {', '.join(missing)}")
    extra = sorted(doc.keys() - _REQUEST_KEYS - _HISTORY_KEYS)
    if extra:
        raise RequestError(422, f"unknown field(s): {', '.join(extra)}")

    device_id = doc["device_id"]
    if not isinstance(device_id, str) or not 0 < len(device_id) <= MAX_DEVICE_ID_CHARS:
        raise RequestError(422, f"device_id must be a string of 1..{MAX_DEVICE_ID_CHARS} characters")
    epoch = doc["epoch"]
    # bool is a subclass of int in Python; JSON true is not an epoch number.
    if type(epoch) is not int or not 0 <= epoch <= 0xFFFFFFFF:
        raise RequestError(422, f"epoch must be an integer in 0..{0xFFFFFFFF}, got {epoch!r:.40}")
    scale = doc["uv_per_lsb"]
    if type(scale) not in (int, float) or not math.isfinite(scale) or scale != C.SAMPLE_UV_PER_LSB:
        raise RequestError(
            422, f"uv_per_lsb must be {C.SAMPLE_UV_PER_LSB} (the SleepEdge transport scale), got {scale!r:.40}"
        )
    samples = doc["samples"]
    if not isinstance(samples, list):
        raise RequestError(422, f"samples must be a list of {C.EPOCH_SAMPLES} integers")
    if len(samples) != C.EPOCH_SAMPLES:
        raise RequestError(422, f"samples must hold exactly {C.EPOCH_SAMPLES} values, got {len(samples)}")
    for i, v in enumerate(samples):
        if type(v) is not int:
            raise RequestError(422, f"samples[{i}] must be an integer, got {type(v).__name__} {v!r:.40}")
        if not -32768 <= v <= 32767:
            raise RequestError(422, f"samples[{i}] = {v} is outside the int16 range -32768..32767")
    x_uv = np.asarray(samples, dtype=np.int16).astype(np.float32) * np.float32(scale)
    return ClassifyRequest(device_id, epoch, x_uv, _parse_history(doc))


#: A JSON string: possessive, so it never backtracks, and an unterminated one runs to the end of
#: the text, so no position is scanned twice (linear time on any input).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\[\s\S][^"\\]*+)*+(?:"|\\?\Z)')


def json_depth(text: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, without parsing it.

    Brackets inside strings do not count. Linear in ``len(text)``, no recursion, so it is safe on
    hostile input; on text that is not JSON the number is meaningless but finite (the parser
    rejects such text anyway).

    Parameters
    ----------
    text
        The raw JSON text.

    Returns
    -------
    int
        The deepest nesting level (0 for a scalar, 1 for ``[1, 2]``, 2 for ``{"a": [1]}``).
    """
    skeleton = np.frombuffer(_JSON_STRING.sub(b"", text), dtype=np.uint8)
    opens = (skeleton == ord("[")) | (skeleton == ord("{"))
    closes = (skeleton == ord("]")) | (skeleton == ord("}"))
    return int(np.cumsum(opens.astype(np.int64) - closes).max(initial=0))


def _parse_history(doc: dict[str, Any]) -> EdgeHistory | None:
    """The optional ``edge_model`` + ``edge_history`` pair (both or neither)."""
    given = _HISTORY_KEYS & doc.keys()
    if not given:
        return None
    if given != _HISTORY_KEYS:
        raise RequestError(422, "edge_model and edge_history go together: give both or neither")
    model = doc["edge_model"]
    if not isinstance(model, str) or len(model) != 8 or any(c not in "0123456789abcdefABCDEF" for c in model):
        raise RequestError(422, f"edge_model must be 8 hex digits (the device's model hash), got {model!r:.40}")
    entries = doc["edge_history"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_HISTORY_ENTRIES:
        raise RequestError(422, f"edge_history must be a list of 1..{MAX_HISTORY_ENTRIES} entries")
    probs = np.zeros((len(entries), C.N_CLASSES), np.int8)
    present = np.zeros(len(entries), bool)
    for i, e in enumerate(entries):
        if e is None:
            continue
        if not isinstance(e, list) or len(e) != C.N_CLASSES:
            raise RequestError(422, f"edge_history[{i}] must be null or a list of {C.N_CLASSES} integers")
        for v in e:
            if type(v) is not int or not -128 <= v <= 127:
                raise RequestError(422, f"edge_history[{i}] holds {v!r:.40}; entries are int8 outputs (-128..127)")
        probs[i] = e
        present[i] = True
    return EdgeHistory(int(model, 16), probs, present)


# --- reading the body ------------------------------------------------------------------------

class ClientGone(Exception):
    """The client disconnected before its request was complete."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES,
                    timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> bytes:
    """Read a request body, never holding more than ``limit`` bytes of it.

    Parameters
    ----------
    request
        The Starlette request whose body has not been read yet.
    limit
        Most bytes accepted.
    timeout_s
        Seconds the client has to deliver the whole body.

    Returns
    -------
    bytes
        The body.

    Raises
    ------
    RequestError
        413 when the Content-Length announces more than ``limit`` (before reading anything) or
        the bytes streamed so far pass it (chunked bodies); 408 when the body is not complete
        within ``timeout_s``.
    ClientGone
        The client disconnected first.
    """
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body is {declared} bytes (Content-Length); the limit is {limit}")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise RequestError(413, f"request body is over the limit of {limit} bytes")
                body += chunk
    except TimeoutError:
        raise RequestError(408, f"request body not complete within {timeout_s:g} s "
                                f"({len(body)} bytes received)") from None
    except ClientDisconnect:
        raise ClientGone(f"client disconnected after {len(body)} bytes of its request body") from None
    return bytes(body)


def _client_name(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "client"


# --- micro-batching --------------------------------------------------------------------------

#: A queued request: the epoch, its edge history, and the future its answer goes to.
_Item = tuple[np.ndarray, "EdgeHistory | None", "asyncio.Future[tuple[np.ndarray, bool]]"]

@dataclass
class BatchStats:
    """Counters a test (or an operator via logs) can read: how well batching works."""

    model_calls: int = 0
    epochs: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class MicroBatcher:
    """Gathers concurrent single-epoch requests into one model call.

    Parameters
    ----------
    model
        Object with ``predict_proba((N, 3000) float32) -> (N, 5)``.
    max_batch
        Most epochs per model call.
    max_wait_ms
        How long to wait after the first queued epoch for more to arrive.
    """

    def __init__(self, model: CloudModelLike, max_batch: int = 32, max_wait_ms: float = 10.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="sleepedge-microbatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def classify(self, x_uv: np.ndarray, history: EdgeHistory | None = None) -> tuple[np.ndarray, bool]:
        """Queue one epoch (and its edge history, if any); wait for its 5 probabilities and
        whether the model used the history."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        fut: asyncio.Future[tuple[np.ndarray, bool]] = asyncio.get_running_loop().create_future()
        await self._queue.put((x_uv, history, fut))
        return await fut

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - loop.time()
                try:
                    # Drain what is already queued without waiting, then wait out the window.
                    item = self._queue.get_nowait() if not self._queue.empty() else (
                        await asyncio.wait_for(self._queue.get(), remaining) if remaining > 0 else None
                    )
                except asyncio.TimeoutError:
                    item = None
                if item is None:
                    break
                batch.append(item)
            live = [item for item in batch if not item[2].cancelled()]
            if not live:
                continue
            x = np.stack([x for x, _, _ in live]).astype(np.float32, copy=False)
            try:
                probs, used = await asyncio.to_thread(self._predict, x, [h for _, h, _ in live])
            except Exception as exc:  # the model failed: every waiting request gets the error
                for _, _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            for (_, _, f), p, u in zip(live, probs, used):
                if not f.done():
                    f.set_result((p, bool(u)))

    def _predict(self, x: np.ndarray, histories: list[EdgeHistory | None]) -> tuple[np.ndarray, np.ndarray]:
        with_history = getattr(self.model, "predict_with_history", None)
        if with_history is not None and any(h is not None for h in histories):
            probs, used = with_history(x, histories)
        else:
            probs, used = self.model.predict_proba(x), np.zeros(len(x), bool)
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (len(x), C.N_CLASSES):
            raise RuntimeError(f"model returned shape {probs.shape}, expected {(len(x), C.N_CLASSES)}")
        self.stats.model_calls += 1
        self.stats.epochs += len(x)
        self.stats.batch_sizes.append(len(x))
        return probs, np.asarray(used, bool)


# --- the app ---------------------------------------------------------------------------------

def create_app(model: CloudModelLike, token: str, *, max_batch: int = 32, max_wait_ms: float = 10.0,
               read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> FastAPI:
    """Build the FastAPI application around a loaded model.

    Parameters
    ----------
    model
        The cloud model (``predict_proba``, ``name``).
    token
        The bearer token every ``/v1/classify`` request must carry.
    max_batch, max_wait_ms
        Micro-batching limits (see :class:`MicroBatcher`).
    read_timeout_s
        Seconds a client has to deliver its request body (408 after that). Serve the app with
        :func:`uvicorn_options` for the matching header deadline.

    Returns
    -------
    fastapi.FastAPI
        The app; ``app.state.batcher`` exposes the batcher and its :class:`BatchStats`.
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    if not token:
        raise SleepEdgeError("cloud service: an empty token would let anyone in; give --token")
    batcher = MicroBatcher(model, max_batch=max_batch, max_wait_ms=max_wait_ms)
    expected = f"Bearer {token}".encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="SleepEdge cloud escalation service", lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str, headers: dict[str, str] | None = None, *,
              body_unread: bool = False) -> JSONResponse:
        if body_unread:
            # The rest of the body may still be on its way: close the connection rather than
            # have uvicorn read (and discard) it, however long it is.
            headers = {**(headers or {}), "Connection": "close"}
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model.name}

    async def classify(request: Request) -> Any:
        auth = request.headers.get("authorization", "").encode()
        # Constant-time comparison: the token is a shared secret.
        if not hmac.compare_digest(auth, expected):
            why = "missing bearer token" if not auth else "wrong bearer token"
            return error(401, why, {"WWW-Authenticate": "Bearer"}, body_unread=True)
        ctype = request.headers.get("content-type", "")
        if ctype and not ctype.split(";")[0].strip().lower().endswith("json"):
            return error(415, f"content-type must be application/json, got {ctype!r}", body_unread=True)
        try:
            req = parse_classify_request(await read_body(request, MAX_BODY_BYTES, read_timeout_s))
        except ClientGone as exc:
            log.warning("%s - %s", _client_name(request), exc)
            return error(400, str(exc))  # nobody reads it; uvicorn drops it
        except RequestError as exc:
            if exc.status == 408:
                log.info("%s - %s", _client_name(request), exc.message)
            return error(exc.status, exc.message, body_unread=exc.status in (408, 413))
        try:
            probs, used = await batcher.classify(req.x_uv, req.history)
        except Exception as exc:  # a model failure is the service's fault, not the client's
            return error(500, f"model failed: {exc}")
        k = int(np.argmax(probs))
        return {
            "epoch": req.epoch,
            "stage": C.STAGES[k],
            "stage_index": k,
            "probs": [float(p) for p in probs],
            "model": model.name,
            "context_used": used,
        }

    # With postponed annotations FastAPI cannot resolve the local ``Request`` name by itself.
    classify.__annotations__["request"] = Request
    app.add_api_route("/v1/classify", classify, methods=["POST"])
    return app


def load_model(spec: str) -> CloudModelLike:
    """Load the cloud model from a directory (``models.load_cloud_model``) or, for tests and
    custom models, from a ``py:module:callable`` factory returning a model object."""
    if spec.startswith("py:"):
        try:
            module_name, attr = spec[3:].rsplit(":", 1)
            return getattr(importlib.import_module(module_name), attr)()
        except (ValueError, ImportError, AttributeError) as exc:
            raise SleepEdgeError(f"--model {spec}: cannot load the model factory: {exc}") from None
    if not os.path.isdir(spec):
        raise SleepEdgeError(f"--model {spec}: no such model directory (train one with `make train`)")
    from host_tools.cloud.model import load_cloud

    return load_cloud(spec)


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: each worker process rebuilds the app from the
    environment the parent set."""
    return create_app(
        load_model(os.environ[_ENV_MODEL]),
        os.environ[TOKEN_ENV],
        max_batch=int(os.environ.get(_ENV_MAX_BATCH, "32")),
        max_wait_ms=float(os.environ.get(_ENV_MAX_WAIT, "10")),
        read_timeout_s=float(os.environ.get(_ENV_READ_TIMEOUT, str(DEFAULT_READ_TIMEOUT_S))),
    )


def uvicorn_options(read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> dict[str, Any]:
    """uvicorn settings that go with :func:`create_app`: the guarded protocol, whose header
    deadline is ``timeout_keep_alive`` (also the idle time allowed between requests)."""
    return {"http": UVICORN_HTTP_PROTOCOL, "timeout_keep_alive": read_timeout_s}


# --- CLI -------------------------------------------------------------------------------------

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="models/cloud",
                        help="cloud model directory: models/cloud (the default: source CNN + edge history) "
                             "or models/source (the epoch alone), or py:module:factory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument("--token", default=None,
                        help=f"bearer token clients must send (default: ${TOKEN_ENV})")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument("--max-batch", type=int, default=32, help="most epochs per model call (default: 32)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="how long a batch waits for more requests (default: 10)")
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_S,
                        help="seconds a client has for its request headers, and again for its body; "
                             f"slower clients are disconnected (default: {DEFAULT_READ_TIMEOUT_S:g})")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SleepEdgeError(f"cloud serve: cannot listen on {host}:{port}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise SleepEdgeError(f"cloud serve: no token: pass --token or set {TOKEN_ENV}")
    if args.workers < 1:
        raise SleepEdgeError(f"cloud serve: --workers must be >= 1, got {args.workers}")
    if args.max_batch < 1 or args.max_wait_ms < 0:
        raise SleepEdgeError("cloud serve: --max-batch must be >= 1 and --max-wait-ms >= 0")
    if not 0 < args.read_timeout <= 3600:
        raise SleepEdgeError(f"cloud serve: --read-timeout must be in (0, 3600] seconds, got {args.read_timeout:g}")
    if not 0 < args.port < 65536:
        raise SleepEdgeError(f"cloud serve: --port {args.port} is not a TCP port")
    _check_port_free(args.host, args.port)
    t0 = time.perf_counter()
    model = load_model(args.model)  # fail early, in the parent, on a bad model
    print(f"sleepedge cloud: model {model.name} loaded in {time.perf_counter() - t0:.1f} s; "
          f"listening on http://{args.host}:{args.port} ({args.workers} worker(s))", flush=True)
    if args.workers == 1:
        app = create_app(model, token, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         read_timeout_s=args.read_timeout)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    **uvicorn_options(args.read_timeout))
    else:
        os.environ.update({_ENV_MODEL: args.model, TOKEN_ENV: token, _ENV_READ_TIMEOUT: str(args.read_timeout),
                           _ENV_MAX_BATCH: str(args.max_batch), _ENV_MAX_WAIT: str(args.max_wait_ms)})
        uvicorn.run("host_tools.cloud.service:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, **uvicorn_options(args.read_timeout))
    return 0

