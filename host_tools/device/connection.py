"""The monitor's side of the device link: open the port, the HELLO / CONFIG handshake, noticing
that the device rebooted (an unsolicited HELLO) or that the port dropped, and reconnecting.

:class:`DeviceConnection` shares the monitor's condition variable: the reader thread updates
the connection's state under it and the streaming thread waits on it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.errors import SleepEdgeError

PING_HELLO = 0x5E5E  #: asks a device that said HELLO before we connected to speak
PING_STATUS = 0x51A7  #: asks for a last STATUS at the end of the night


@dataclass
class ResetEvent:
    """The device rebooted (or the port dropped) at host block ``at_block``."""

    at_block: int
    resumed_epoch: int
    reconnected: bool
    gap_epochs: list[int] = field(default_factory=list)


class DeviceConnection:
    """One device link with its handshake and reset detection.

    Parameters
    ----------
    port, baudrate
        Where the device is (see :class:`host_tools.device.proxy.DeviceLink`).
    cond
        The monitor's condition variable (the reader thread notifies it on every frame).
    say
        Prints one line to the user (the live view's message line).
    threshold, timeout_ms
        Sent as CONFIG after every (re)connect when either is given.
    hello_timeout_s, reconnect_timeout_s
        How long to wait for the device's HELLO at the start and after a dropped port.
    """

    def __init__(self, port: str, cond: threading.Condition, say: Callable[[str], None], *,
                 baudrate: int = 115200, threshold: float | None = None, timeout_ms: int | None = None,
                 hello_timeout_s: float = 15.0, reconnect_timeout_s: float = 30.0) -> None:
        self.port, self.baudrate = port, baudrate
        self.cond = cond
        self.say = say
        self.threshold, self.timeout_ms = threshold, timeout_ms
        self.hello_timeout_s, self.reconnect_timeout_s = hello_timeout_s, reconnect_timeout_s
        self.link: Any = None
        self.hello: P.Hello | None = None
        self.hellos = 0
        self.config_acks_expected = 0
        self.reset_pending = False
        self.disconnected = False
        self.last_status: P.Status | None = None
        self.pongs: set[int] = set()
        self.device_errors: dict[str, int] = {}

    @property
    def lost(self) -> bool:
        """The device rebooted or the port dropped, and the monitor has not recovered yet."""
        return self.reset_pending or self.disconnected

    @property
    def escalation_timeout_ms(self) -> int:
        return self.hello.timeout_ms if self.hello else C.DEFAULT_ESCALATION_TIMEOUT_MS

    # -- reader-thread callbacks (called with ``cond`` held)
    def on_hello(self, msg: P.Hello) -> bool:
        """Record a HELLO; True when it was unsolicited, i.e. the device rebooted."""
        self.hellos += 1
        rebooted = False
        if self.config_acks_expected > 0:
            self.config_acks_expected -= 1
        elif self.hello is not None:
            self.reset_pending = rebooted = True
        self.hello = msg
        return rebooted

    def on_link_message(self, msg: Any) -> None:
        """STATUS, PONG and ERROR frames."""
        if isinstance(msg, P.Status):
            self.last_status = msg
        elif isinstance(msg, P.Pong):
            self.pongs.add(msg.token)
        elif isinstance(msg, P.Error):
            key = P.ERROR_NAMES.get(msg.code, f"error {msg.code}")
            self.device_errors[key] = self.device_errors.get(key, 0) + 1

    def _on_disconnect(self, why: str) -> None:
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    # -- the streaming thread
    def wait(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout_s)

    def send(self, msg: Any) -> bool:
        """Send one message; False, and the link marked as dropped, when the send failed."""
        try:
            self.link.send(msg)
        except SleepEdgeError:
            with self.cond:
                self.disconnected = True
            return False
        return True

    def open(self, on_message: Callable[[Any], None]) -> None:
        """Open the port, wait for the device's HELLO (or PONG), check the protocol, configure."""
        from host_tools.device.proxy import DeviceLink

        self.link = DeviceLink(self.port, on_message, baudrate=self.baudrate,
                               on_disconnect=self._on_disconnect).open(self.hello_timeout_s)
        if not self.wait(lambda: self.hello is not None, self.hello_timeout_s):
            # A device that booted before we connected has said HELLO already: ask it to speak.
            self.link.send(P.Ping(PING_HELLO))
            if not self.wait(lambda: PING_HELLO in self.pongs, 3.0):
                raise SleepEdgeError(f"--port {self.port}: no HELLO or PONG from the device within "
                                     f"{self.hello_timeout_s:.0f} s: is the SleepEdge firmware running?")
        if self.hello is not None and self.hello.protocol != C.PROTOCOL_VERSION:
            raise SleepEdgeError(f"--port {self.port}: device speaks protocol {self.hello.protocol}, "
                                 f"this host speaks {C.PROTOCOL_VERSION}")
        self.configure()

    def configure(self) -> None:
        """Send CONFIG (when asked for) and wait for the HELLO that acknowledges it."""
        if self.threshold is None and self.timeout_ms is None:
            return
        hello = self.hello
        threshold = self.threshold if self.threshold is not None else (
            hello.threshold if hello else C.DEFAULT_CONFIDENCE_THRESHOLD)
        timeout_ms = self.timeout_ms if self.timeout_ms is not None else (
            hello.timeout_ms if hello else C.DEFAULT_ESCALATION_TIMEOUT_MS)
        with self.cond:
            self.config_acks_expected += 1
            before = self.hellos
        self.link.send(P.Config(float(threshold), int(timeout_ms)))
        if not self.wait(lambda: self.hellos > before, 5.0):
            with self.cond:
                self.config_acks_expected = max(0, self.config_acks_expected - 1)
            self.say("device did not acknowledge CONFIG within 5 s; continuing")

    def reconnect_if_dropped(self, block: int) -> bool:
        """After a reset: re-open the port if it dropped (True) and wait for the HELLO.
        A device that rebooted behind an open port (False) needs nothing here."""
        with self.cond:
            reconnect = self.disconnected
            self.reset_pending = False
        if not reconnect:
            return False
        self.say(f"device link dropped at block {block}; reconnecting to {self.port}")
        with self.cond:
            self.hello = None
        self.link.close()
        self.link.counters.reconnects += 1
        self.link.open(self.reconnect_timeout_s)
        with self.cond:
            self.disconnected = False
        if not self.wait(lambda: self.hello is not None, self.reconnect_timeout_s):
            raise SleepEdgeError(f"--port {self.port}: reconnected, but the device sent no HELLO")
        return True

    def request_status(self) -> None:
        """Ask for a last STATUS (the device's link counters); best effort."""
        if not self.link.connected.is_set():
            return
        try:
            with self.cond:
                self.last_status = None
            self.link.send(P.Ping(PING_STATUS))
            self.wait(lambda: self.last_status is not None, 3.0)
        except SleepEdgeError:
            pass

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
