"""``make demo``: the whole system on one machine, end to end.

1. build the firmware with the shipped edge model (``models/edge``);
2. take a night of a subject the shipped models never saw (``models/metrics.json``
   ``test_subjects``; generated with ``host_tools.data.synth``), or ``--edf/--hypno`` for a real
   Sleep-EDF night, and cut the sleep period +-30 min;
3. start the cloud service (``sleepedge cloud serve``, ``models/cloud``: the source CNN + the
   device's recent outputs; ``models/source`` where there is no ``cloud/``) as a separate process
   on 127.0.0.1 with a random token;
4. boot the emulated board (QEMU) and run the monitor with the in-process proxy, live view on;
5. write results.csv (as the night goes), summary.json, report.md (the night's sleep statistics),
   the hypnogram PNG and EDF+ (at the end, or at Ctrl-C with what was completed), and the
   streamed recording as ``*-PSG.edf`` (so ``sleepedge predict`` on it reproduces the device's
   edge labels epoch for epoch: the device numbers epochs from the start of that file), and print
   the summary and the night's report.

Run it as ``python -m host_tools.demo --out DIR [--epochs N] [--edf F --hypno F]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import REPO_ROOT
from host_tools import constants as C
from host_tools import shown_path
from host_tools.errors import SleepEdgeError

#: Through QEMU a 30-s epoch is ~6.3 kB of SAMPLES frames (14-40 KiB/s): about 0.2-0.5 s per
#: epoch plus escalations. 600 epochs (5 h) keeps the demo within ~5 min of streaming.
DEFAULT_MAX_EPOCHS = 600
WAKE_MARGIN_EPOCHS = 60  #: sleep period +- 30 min


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_subject_night(models: Path, out: Path) -> tuple[Path, Path]:
    """Generate the first held-out subject's night (as in the training corpus) into ``out``.

    The training corpus is ``synth.generate_corpus(..., domain="sc", seed=S)``; subject ``SC4ss``
    is its subject number ``ss``, so regenerating that subject with the same seed gives the night
    the models were tested on, never trained on.
    """
    from host_tools.data import synth

    metrics_path = models / "metrics.json"
    if not metrics_path.is_file():
        raise SleepEdgeError(f"{metrics_path}: missing: train the models first (`make train`)")
    metrics = json.loads(metrics_path.read_text())
    tests = metrics.get("test_subjects") or []
    if not tests:
        raise SleepEdgeError(f"{metrics_path}: no \"test_subjects\" listed")
    subject = str(sorted(tests)[0])
    corpus = metrics.get("synth") or {}
    seed = int(corpus.get("seed", 0))
    domain = str(corpus.get("domain", "sc"))
    try:
        number = int(subject[-2:])
    except ValueError:
        raise SleepEdgeError(f"{metrics_path}: test subject {subject!r} is not like SC4ss") from None
    psg_name, hyp_name = synth.night_names(domain, number, 1, seed)
    out.mkdir(parents=True, exist_ok=True)
    psg, hyp = out / psg_name, out / hyp_name
    if psg.is_file() and hyp.is_file():
        return psg, hyp
    _say(f"generating held-out subject {subject}'s night 1 (synthetic, seed {seed}) ...")
    minutes = corpus.get("night_minutes")
    return synth.generate_night(out, number, 1, domain, seed, None if minutes is None else int(minutes))


def write_stream_copy(psg: Path, channel: str, first_epoch: int, n_epochs: int, out: Path
                      ) -> tuple[Path, np.ndarray, dt.datetime]:
    """Write the streamed segment as its own PSG and return it as the device will see it.

    The copy is read back and its samples are what is streamed, so ``sleepedge predict`` on the
    copy and the device start from exactly the same int16 samples and number epochs alike.
    """
    from host_tools.data.edf_io import read_psg_channel, write_psg
    from host_tools.data.filters import to_device_samples

    x_uv, fs, start = read_psg_channel(psg, channel)
    if fs != C.FS_HZ:
        raise SleepEdgeError(f"{psg}: {channel} is sampled at {fs} Hz, the device expects {C.FS_HZ}")
    seg = x_uv[first_epoch * C.EPOCH_SAMPLES:(first_epoch + n_epochs) * C.EPOCH_SAMPLES]
    seg_start = start + dt.timedelta(seconds=first_epoch * C.EPOCH_S)
    stem = psg.name.removesuffix("-PSG.edf").removesuffix(".edf")
    copy = out / f"{stem}-PSG.edf"
    write_psg(copy, {"EEG Fpz-Cz": seg}, C.FS_HZ, seg_start)
    back, _fs, back_start = read_psg_channel(copy, "Fpz-Cz")
    return copy, to_device_samples(back[:n_epochs * C.EPOCH_SAMPLES]), back_start


class CloudProcess:
    """``sleepedge cloud serve`` in a child process, stopped on exit."""

    def __init__(self, model_dir: Path, token: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "SLEEPEDGE_CLOUD_TOKEN": token}
        self._log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "cloud", "serve", "--model", str(model_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)

    def wait_ready(self, timeout_s: float = 180.0) -> str:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SleepEdgeError(f"cloud service exited with status {self.proc.returncode}; see {self.log}")
            try:
                r = httpx.get(f"{self.url}/health", timeout=1.0)
                if r.status_code == 200:
                    return str(r.json().get("model", "?"))
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SleepEdgeError(f"cloud service not ready after {timeout_s:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def run_demo(out: Path, epochs: int | None = None, edf: Path | None = None, hypno: Path | None = None,
             models: Path = REPO_ROOT / "models", channel: str = "Fpz-Cz", plain: bool | None = None,
             threshold: float | None = None) -> dict[str, Any]:
    """Run the demo; returns the summary (also written to ``out/summary.json``)."""
    from host_tools.device.emulator import QemuDevice, build_firmware
    from host_tools.device.live_view import LiveView
    from host_tools.device.monitor import MonitorOptions, expert_labels, sleep_period
    from host_tools.device.night_folder import NightFolder, run_night

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    if (edf is None) != (hypno is None):
        raise SleepEdgeError("give both EDF= and HYPNO= (a PSG and its hypnogram), or neither")
    for need in (models / "edge", models / "source"):
        if not need.is_dir():
            raise SleepEdgeError(f"{need}: missing: train the models first (`make train`)")

    _say("building the firmware with models/edge ...")
    elf = build_firmware(models / "edge")
    _say(f"firmware: {elf.relative_to(REPO_ROOT) if elf.is_relative_to(REPO_ROOT) else elf}")

    if edf is None:
        psg, hyp = test_subject_night(models, out / "source-night")
        origin = "synthetic night of a held-out subject (generator figures, not Sleep-EDF)"
    else:
        psg, hyp = Path(edf), Path(hypno)  # type: ignore[arg-type]
        origin = f"{psg.name} (user-supplied recording)"
    from host_tools.data.edf_io import read_psg_channel

    x_uv, _fs, start = read_psg_channel(psg, channel)
    n_total = len(x_uv) // C.EPOCH_SAMPLES
    expert_full = expert_labels(hyp, n_total, start)
    first, n = sleep_period(expert_full, WAKE_MARGIN_EPOCHS)
    n = min(n, epochs if epochs is not None else DEFAULT_MAX_EPOCHS)
    _say(f"streaming {n} epochs ({n / 120:.1f} h) from epoch {first} of {psg.name}: {origin}")
    copy, signal, copy_start = write_stream_copy(psg, channel, first, n, out)
    expert = expert_full[first:first + n]

    token = secrets.token_urlsafe(24)
    cloud_dir = models / "cloud" if (models / "cloud").is_dir() else models / "source"
    cloud = CloudProcess(cloud_dir, token, out / "cloud.log")
    recording = {"psg": str(copy), "source_psg": str(psg), "hypnogram": str(hyp),
                 "first_epoch_in_source": first, "origin": origin}
    # results.csv grows as the night goes; the rest is written at the end, or at Ctrl-C.
    folder = NightFolder(out, [], name=copy.name.removesuffix("-PSG.edf"), start=copy_start, print_paths=False,
                         extra=lambda: {"recording": recording, "demo_wall_s": round(time.monotonic() - t0, 1)})
    try:
        _say("starting the cloud service ...")
        model_name = cloud.wait_ready()
        _say(f"cloud service up at {cloud.url} (model {model_name})")
        with QemuDevice(elf, timeout_s=3600) as dev:
            _say(f"emulated board booted, serial on {dev.url}")
            opts = MonitorOptions(port=dev.url, signal=signal, cloud=cloud.url, token=token, expert=expert,
                                  title=f"SleepEdge demo: {copy.name}", device_id="qemu-netduinoplus2",
                                  threshold=threshold)
            print()
            summary = run_night(opts, LiveView(plain=plain), folder)
    finally:
        cloud.stop()
    _say(f"wrote results.csv, summary.json, report.md, {copy.name.removesuffix('-PSG.edf')}-Hypnogram.edf, "
         f"hypnogram.png and {copy.name} to {out}  (total {summary['demo_wall_s']:.0f} s)")
    _say(f"check: sleepedge predict --model {shown_path(models / 'edge')} --in {copy} --out {out / 'predict.csv'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host_tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/demo"), help="output folder (default: reports/demo)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs to stream (default: the sleep period +-30 min, at most {DEFAULT_MAX_EPOCHS})")
    parser.add_argument("--edf", type=Path, default=None, help="a real PSG (Sleep-EDF *-PSG.edf) instead")
    parser.add_argument("--hypno", type=Path, default=None, help="its hypnogram")
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="models folder (default: models)")
    parser.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    parser.add_argument("--threshold", type=float, default=None,
                        help="escalation threshold sent to the device (default: the one exported with the model)")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 < args.threshold <= 1:
        print("demo: error: --threshold must be in (0, 1]", file=sys.stderr)
        return 2
    if args.epochs is not None and args.epochs < 1:
        print("demo: error: --epochs must be >= 1", file=sys.stderr)
        return 2
    from host_tools.device.night_folder import Terminated

    try:
        run_demo(args.out, args.epochs, args.edf, args.hypno, args.models, plain=True if args.plain else None,
                 threshold=args.threshold)
    except SleepEdgeError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("demo: terminated", file=sys.stderr)
        return 143
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
