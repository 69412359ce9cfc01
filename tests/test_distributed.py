"""Scale-out: MirroredStrategy in process, and two local MultiWorkerMirroredStrategy workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from host_tools.learn.models import load_metadata

TIMEOUT_S = 240


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_mirrored_strategy_no_filter(tiny_cache, tmp_path):
    from host_tools.learn.train import train_source

    out = tmp_path / "mirrored"
    m = train_source(tiny_cache, out, passes=1, steps_per_pass=2, batch=8, strategy="mirrored",
                     filtered=False, val_max=64, verbose=0)
    assert m["strategy"] == "mirrored" and m["replicas"] >= 1
    assert m["filtered"] is False and load_metadata(out)["filtered"] is False
    assert (out / "model.keras").is_file()


def test_two_local_workers(tiny_cache, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    outs = [tmp_path / f"out{i}" for i in range(2)]
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        cmd = [sys.executable, "-m", "host_tools", "train", "source", "--strategy", "multiworker",
               "--cache", str(tiny_cache), "--out", str(outs[i]), "--passes", "1",
               "--steps-per-pass", "2", "--batch", "4", "--val-max", "32", "--quiet"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"multi-worker training did not finish within {TIMEOUT_S} s")
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} exited {p.returncode}:\n{logs[i][-3000:]}"
    # The chief (worker 0) writes the model; the other worker's throw-away copy is gone.
    assert (outs[0] / "model.keras").is_file()
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert metrics["strategy"] == "multiworker" and metrics["replicas"] == 2
    assert not outs[1].exists()
