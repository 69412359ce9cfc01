"""``sleepedge`` command line: one subcommand per pipeline stage.

Every command lives in its own module, which provides::

    def configure_parser(parser: argparse.ArgumentParser) -> None  # add arguments
    def run(args: argparse.Namespace) -> int                       # do the work, return exit code

Modules must import heavy packages (TensorFlow, MNE, FastAPI) inside ``run`` so ``--help``
stays instant. A :class:`~host_tools.errors.SleepEdgeError` becomes a one-line message and
exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from host_tools import __version__
from host_tools.errors import SleepEdgeError

#: (command words, module, one-line help). Order is the order of the pipeline.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("data", "fetch"), "host_tools.data.fetch", "download Sleep-EDF Expanded from PhysioNet, SHA-256 checked"),
    (("data", "synth"), "host_tools.data.synth", "write a synthetic PSG corpus as Sleep-EDF-style EDF files"),
    (("data", "convert"), "host_tools.data.convert", "text signals + stage-per-line hypnogram (e.g. DREAMS) -> an EDF pair"),
    (("data", "prepare"), "host_tools.data.prepare", "read PSG + hypnogram EDFs into a per-night epoch cache"),
    (("train", "source"), "host_tools.learn.train", "train the source (cloud) model"),
    (("train", "cloud"), "host_tools.cloud.model", "train the cloud model: source CNN + the device's recent outputs"),
    (("train", "context"), "host_tools.learn.context", "train the device's context head over its last edge outputs"),
    (("transfer", "finetune"), "host_tools.learn.transfer", "fine-tune the source model on k target nights"),
    (("transfer", "distil"), "host_tools.learn.distil", "distil the source model into the small edge model"),
    (("compress",), "host_tools.learn.compress", "prune and int8-quantize the edge model"),
    (("export",), "host_tools.deploy.export", "emit C arrays and headers for the firmware"),
    (("predict",), "host_tools.deploy.predict", "host reference of the device: filter + int8 model in TFLM"),
    (("adapt",), "host_tools.adapt", "adapt the shipped models to a few labelled recordings (leave-one-person-out)"),
    (("bench", "accuracy"), "host_tools.bench.accuracy", "accuracy, escalation curve and plots"),
    (("bench", "real"), "host_tools.bench.real", "real EEG: DREAMS people, edge model vs adapt, YASA and GSSC"),
    (("bench", "randomization"), "host_tools.bench.randomization",
     "each randomization family / augmentation / normalization: synthetic and DREAMS figures side by side"),
    (("bench", "device"), "host_tools.bench.device", "flash/RAM/instructions of the firmware on the emulated board"),
    (("monitor",), "host_tools.device.monitor", "stream a recording to the device and watch the hypnogram"),
    (("cloud", "serve"), "host_tools.cloud.service", "HTTP service running the cloud model on escalations"),
    (("proxy",), "host_tools.device.proxy", "bridge a device's escalations to the cloud service"),
    (("gen-headers",), "host_tools.deploy.codegen", "write firmware/generated/sleepedge_constants.h"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleepedge",
        description="SleepEdge: sleep staging on a microcontroller with cloud escalation.",
    )
    parser.add_argument("--version", action="version", version=f"sleepedge {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module_name, help_text in COMMANDS:
        container = top
        if len(words) == 2:
            if words[0] not in groups:
                gp = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = gp.add_subparsers(dest=f"{words[0]}_command", metavar="SUBCOMMAND")
            container = groups[words[0]]
        sub = container.add_parser(words[-1], help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            sub.set_defaults(_run=None, _missing=module_name)
            continue
        module.configure_parser(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", "help")
    if run == "help":
        parser.print_help()
        return 0
    if run is None:
        print(f"sleepedge: {args._missing} is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(run(args) or 0)
    except SleepEdgeError as exc:
        print(f"sleepedge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sleepedge: interrupted", file=sys.stderr)
        return 130
    except Exception:
        if os.environ.get("SLEEPEDGE_DEBUG"):
            raise
        import traceback

        last = traceback.format_exc().strip().splitlines()[-1]
        print(f"sleepedge: internal error: {last} (set SLEEPEDGE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
