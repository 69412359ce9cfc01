"""Device benchmark on the emulated STM32F405: flash, RAM, instructions per epoch and per MAC.

``make bench-device`` (``python -m host_tools.bench_device``) builds the firmware with the
shipped model (``models/edge``) as a bench image, boots it in QEMU with
``-icount shift=0,align=off,sleep=off`` (virtual time advances one nanosecond per executed
instruction, so the firmware's SysTick-based counter counts instructions), streams a few epochs
over the emulated UART and reads from the device:

* STATUS ``filter_cycles_last_epoch`` (filter + int8 quantization over the epoch's 30 blocks)
  and ``infer_cycles_last_epoch`` (around ``se_model_run``), after every epoch (PING);
* the stack high-water mark the bench image prints via semihosting.

Flash and static RAM come from ``arm-none-eabi-size``; arena bytes and MACs from the plan
(``SE_PLAN_ARENA_BYTES``, ``SE_PLAN_MACS`` in ``model_plan.h``). QEMU counts instructions,
not cycles: every figure here is in instructions.

The streamed signal is synthetic EEG (``host_tools.data.synth``): instruction counts of the filter and
of the int8 network do not depend on the signal's content, and no accuracy is measured here.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import REPO_ROOT
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "edge"
DEFAULT_BUILD_DIR = REPO_ROOT / "firmware" / "build" / "bench"
DEFAULT_OUT = REPO_ROOT / "reports" / "bench-device.json"

#: Budgets from the firmware issue: flash and RAM of the STM32F405 image, cost per MAC.
TARGET_FLASH_BYTES = 256 * 1024
TARGET_RAM_BYTES = 64 * 1024
TARGET_INSTRUCTIONS_PER_MAC = 1.2

_STACK_RE = re.compile(r"SE-BENCH epochs=(\d+) stack=(\d+)")


def synthetic_eeg(n_epochs: int, seed: int = 0) -> np.ndarray:
    """Synthetic Fpz-Cz EEG in microvolts (float64), ``n_epochs`` x 30 s, cycling W/N1/N2/N3/REM.

    Uses the project's generator (:func:`host_tools.data.synth.synth_night`, sleep-cassette domain)
    so the signal has realistic spectra and amplitudes. Synthetic data: never a Sleep-EDF result.
    """
    from host_tools.data import synth

    if n_epochs < 1:
        raise SleepEdgeError(f"synthetic_eeg: need at least one epoch, got {n_epochs}")
    rng = np.random.default_rng(seed)
    dom = synth.DOMAIN_PARAMS["sc"]
    stages = np.array([0, 1, 2, 2, 3, 3, 2, 4, 4, 2], dtype=np.int64)
    seq = np.resize(stages, n_epochs)
    subj = synth.draw_subject(rng, dom)
    signals, _ = synth.synth_night(seq, subj, dom, rng)
    return np.asarray(signals[synth.CHANNELS[0]], dtype=np.float64)[: n_epochs * C.EPOCH_SAMPLES]


def read_plan_macros(model_dir: str | Path) -> dict[str, int]:
    """``SE_PLAN_ARENA_BYTES`` and ``SE_PLAN_MACS`` from ``model_dir/model_plan.h``."""
    path = Path(model_dir) / "model_plan.h"
    if not path.is_file():
        raise SleepEdgeError(f"{path}: missing; run `sleepedge export` to generate the model sources")
    text = path.read_text(errors="replace")
    out: dict[str, int] = {}
    for name in ("SE_PLAN_ARENA_BYTES", "SE_PLAN_MACS"):
        m = re.search(rf"#define\s+{name}\s+\(?\s*(\d+)\s*[uUlL]*\s*\)?", text)
        if m is None:
            raise SleepEdgeError(f"{path}: no integer #define {name}")
        out[name] = int(m.group(1))
    # A context head (context_plan.h) runs after the edge model on the same arena: its MACs add up.
    ctx = Path(model_dir) / "context_plan.h"
    if ctx.is_file():
        text = ctx.read_text(errors="replace")
        for name in ("SE_CONTEXT_PLAN_ARENA_BYTES", "SE_CONTEXT_PLAN_MACS"):
            m = re.search(rf"#define\s+{name}\s+\(?\s*(\d+)\s*[uUlL]*\s*\)?", text)
            if m is None:
                raise SleepEdgeError(f"{ctx}: no integer #define {name}")
            out[name] = int(m.group(1))
    return out


def run_bench(
    model_dir: str | Path = DEFAULT_MODEL_DIR,
    *,
    epochs: int = 4,
    build_dir: str | Path = DEFAULT_BUILD_DIR,
    seed: int = 0,
    timeout_s: float = 300.0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Build, boot under -icount, stream ``epochs`` epochs and collect the figures.

    Returns
    -------
    dict
        The report written to ``bench-device.json`` (see module docstring).
    """
    from host_tools.data import filters
    from host_tools.device import protocol
    from host_tools.device.emulator import DeviceSession, QemuDevice, build_firmware, image_size

    if epochs < 1:
        raise SleepEdgeError(f"--epochs must be at least 1, got {epochs}")
    model_dir = Path(model_dir).resolve()
    plan = read_plan_macros(model_dir)
    elf = build_firmware(model_dir, build_dir, bench=True)
    size = image_size(elf)
    samples = filters.to_device_samples(synthetic_eeg(epochs, seed))

    per_epoch: list[dict[str, int]] = []
    t0 = time.monotonic()
    with QemuDevice(elf, icount=True, timeout_s=timeout_s) as dev, DeviceSession(dev.url) as link:
        hello = link.wait_for(lambda m: isinstance(m, protocol.Hello), 30, what="HELLO")
        # Threshold 0: nothing escalates, so no epoch waits on a cloud timeout.
        n = len(link.messages)
        link.send(protocol.Config(0.0, C.DEFAULT_ESCALATION_TIMEOUT_MS))
        link.wait_for(lambda m: isinstance(m, protocol.Hello), 30, since=n, what="HELLO after CONFIG")
        progress = _progress(epochs, show_progress)
        try:
            for k in range(epochs):
                block0 = k * C.BLOCKS_PER_EPOCH
                link.stream_blocks(samples[k * C.EPOCH_SAMPLES:(k + 1) * C.EPOCH_SAMPLES], block0)
                link.wait_for(lambda m, k=k: isinstance(m, protocol.Final) and m.epoch == k, 60,
                              what=f"FINAL for epoch {k}")
                n = len(link.messages)
                link.send(protocol.Ping(k))
                st = link.wait_for(lambda m: isinstance(m, protocol.Status), 30, since=n, what="STATUS")
                per_epoch.append({"epoch": k, "filter_instructions": st.filter_cycles_last_epoch,
                                  "inference_instructions": st.infer_cycles_last_epoch,
                                  "rx_overflows": st.rx_overflows})
                progress(k + 1)
        finally:
            progress(None)
        results = link.of_type(protocol.Result)
    qemu_out = dev.stderr_text(lines=None)
    wall_s = time.monotonic() - t0

    stacks = [int(m.group(2)) for m in _STACK_RE.finditer(qemu_out)]
    stack_bytes = max(stacks) if stacks else 0
    filt = [e["filter_instructions"] for e in per_epoch]
    infer = [e["inference_instructions"] for e in per_epoch]
    filter_instr = int(statistics.median(filt))
    infer_instr = int(statistics.median(infer))
    macs = plan["SE_PLAN_MACS"] + plan.get("SE_CONTEXT_PLAN_MACS", 0)
    ram_bytes = size["ram_bytes"] + stack_bytes
    report: dict[str, Any] = {
        "device": "QEMU netduinoplus2 (STM32F405, Cortex-M4F), -icount shift=0,align=off,sleep=off",
        "units": "instructions (QEMU counts executed instructions, not cycles)",
        "signal": f"synthetic EEG (host_tools.data.synth, sleep-cassette domain, seed {seed}); not Sleep-EDF",
        "model_dir": str(model_dir),
        "model_hash": f"{hello.model_hash:08x}",
        "epochs_streamed": epochs,
        "flash_bytes": size["flash_bytes"],
        "static_ram_bytes": size["ram_bytes"],
        "stack_high_water_bytes": stack_bytes,
        "ram_bytes": ram_bytes,
        "text_bytes": size["text"], "data_bytes": size["data"], "bss_bytes": size["bss"],
        "arena_bytes": plan["SE_PLAN_ARENA_BYTES"],
        "macs_per_epoch": macs,
        "context_head_macs_per_epoch": plan.get("SE_CONTEXT_PLAN_MACS"),
        "filter_instructions_per_epoch": filter_instr,
        "filter_instructions_per_sample": filter_instr / C.EPOCH_SAMPLES,
        "inference_instructions_per_epoch": infer_instr,
        "instructions_per_mac": infer_instr / macs if macs else None,
        "per_epoch": per_epoch,
        "results": len(results),
        "wall_s": round(wall_s, 2),
        "targets": {
            "flash_bytes": TARGET_FLASH_BYTES,
            "ram_bytes": TARGET_RAM_BYTES,
            "instructions_per_mac": TARGET_INSTRUCTIONS_PER_MAC,
        },
    }
    report["meets"] = {
        "flash_bytes": report["flash_bytes"] <= TARGET_FLASH_BYTES,
        "ram_bytes": ram_bytes <= TARGET_RAM_BYTES,
        "instructions_per_mac": report["instructions_per_mac"] is not None
        and report["instructions_per_mac"] <= TARGET_INSTRUCTIONS_PER_MAC,
    }
    return report


def _progress(total: int, enabled: bool):
    """A callable ``update(done)`` drawing a rich progress bar; ``update(None)`` closes it."""
    if not enabled:
        return lambda done: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("streaming epochs to QEMU", total=total)
    bar.start()

    def update(done: int | None) -> None:
        if done is None:
            bar.stop()
        else:
            bar.update(task, completed=done)

    return update


def format_table(report: dict[str, Any]) -> Any:
    """A rich Table of the headline figures with their targets."""
    from rich.table import Table

    ok = report["meets"]
    t = Table(title=f"Device benchmark: {report['device']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_column("", justify="center")
    mark = {True: "[green]ok[/green]", False: "[red]over[/red]"}
    t.add_row("flash (text + data)", f"{report['flash_bytes']:,} B", f"<= {TARGET_FLASH_BYTES:,} B",
              mark[ok["flash_bytes"]])
    t.add_row("RAM (data + bss + stack high-water)", f"{report['ram_bytes']:,} B",
              f"<= {TARGET_RAM_BYTES:,} B", mark[ok["ram_bytes"]])
    t.add_row("  of which stack", f"{report['stack_high_water_bytes']:,} B", "", "")
    t.add_row("  of which model arena", f"{report['arena_bytes']:,} B", "", "")
    t.add_row("filter + quantize, per epoch", f"{report['filter_instructions_per_epoch']:,} instr", "", "")
    t.add_row("inference, per epoch", f"{report['inference_instructions_per_epoch']:,} instr", "", "")
    t.add_row("MACs per epoch", f"{report['macs_per_epoch']:,}", "", "")
    ipm = report["instructions_per_mac"]
    t.add_row("instructions per MAC", f"{ipm:.3f}" if ipm is not None else "n/a",
              f"<= {TARGET_INSTRUCTIONS_PER_MAC}", mark[ok["instructions_per_mac"]])
    return t


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="folder with model_data.{c,h} and model_plan.{c,h} (default: models/edge)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs to stream (default: 4)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (default: reports/bench-device.json)")
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR, help="bench image build folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic signal")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    report = run_bench(args.model_dir, epochs=args.epochs, build_dir=args.build_dir, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console = Console()
    console.print(format_table(report))
    console.print(f"wrote {args.out} ({report['units']}; signal: {report['signal']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m host_tools.bench_device`` (``make bench-device``)."""
    import sys

    parser = argparse.ArgumentParser(prog="python -m host_tools.bench_device", description=__doc__.splitlines()[0])
    configure_parser(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SleepEdgeError as exc:
        print(f"bench-device: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
