"""Stage 5, artifacts -> device -> results: the emulated board, the serial protocol, proxy, monitor and live view."""
