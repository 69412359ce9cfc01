"""Entry point ``python -m host_tools.demo`` (``make demo``); the code is :mod:`host_tools.device.demo`."""

from host_tools.device.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
