"""Shared by the QEMU tests that stream a whole signal and compare every RESULT with the host."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def stream_results(elf: Path, signal_raw: np.ndarray, n_epochs: int, *, result_timeout_s: float = 120,
                   hello: list | None = None) -> dict:
    """Boot the firmware in QEMU, stream ``signal_raw`` (int16 device samples) and return the
    RESULT frames by epoch once epoch ``n_epochs - 1`` has been reported; the HELLO frame is
    appended to ``hello`` when given."""
    from host_tools.device import protocol as P
    from host_tools.device.emulator import DeviceSession, QemuDevice

    with QemuDevice(elf, timeout_s=240) as dev, DeviceSession(dev.url) as link:
        first = link.wait_for(lambda m: isinstance(m, P.Hello), 30, what="HELLO")
        if hello is not None:
            hello.append(first)
        link.stream_blocks(signal_raw)
        link.wait_for(lambda m: isinstance(m, P.Result) and m.epoch == n_epochs - 1, result_timeout_s,
                      what="last RESULT")
        return {r.epoch: r for r in link.of_type(P.Result)}
