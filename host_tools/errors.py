"""The one exception type the CLI turns into a one-line message (never a traceback)."""

from __future__ import annotations


class SleepEdgeError(Exception):
    """A user-facing error: bad input file, missing data, unreachable service.

    The message must name the file (or URL, or argument) and say what is wrong with it.
    """
