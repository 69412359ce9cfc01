"""uvicorn's h11 protocol with a deadline for request headers (slow-client protection).

uvicorn times out a keep-alive connection only between requests, and only while no byte arrives:
a client that opens a connection and sends nothing, or trickles its request line and headers a
byte at a time, holds the connection forever. :class:`GuardedH11Protocol` closes any connection
whose next request's headers are not complete ``timeout_keep_alive`` seconds after the connection
opened or the previous response went out. The body has its own deadline in the service
(``host_tools.cloud.service.read_body``), which answers 408.

Kept apart from ``service.py`` because it imports uvicorn at import time, and ``sleepedge --help``
imports ``service.py``; uvicorn finds it by name (``service.UVICORN_HTTP_PROTOCOL``), which also
works for ``--workers N`` (each worker imports it).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("uvicorn.error")


class GuardedH11Protocol(H11Protocol):
    """``H11Protocol`` plus a header deadline of ``config.timeout_keep_alive`` seconds."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.timeout_keep_alive, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # headers arrived and a request is being served; its body has its own deadline
        if not self.transport.is_closing():
            if self.client:
                log.debug("%s:%d - request headers not complete within %g s; closing",
                          *self.client, self.timeout_keep_alive)
            self.transport.close()
