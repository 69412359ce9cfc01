"""Entry point ``python -m host_tools.bench_device`` (``make bench-device``); the code is
:mod:`host_tools.bench.device`."""

from host_tools.bench.device import main

if __name__ == "__main__":
    raise SystemExit(main())
