"""TFLite Micro on the host: the interpreter the firmware is checked against, run row by row.

One place for "set the input, invoke, read the int8 output" so the edge model, the context head
and their trainers run the device's reference the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def open_interpreter(tflite: bytes, arena_bytes: int) -> Any:
    """A ``tflite_micro`` interpreter for the flatbuffer ``tflite``."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(tflite, arena_size=arena_bytes)


def run_rows(interpreter: Any, q: np.ndarray) -> np.ndarray:
    """int8 outputs (n, outputs) for int8 inputs ``q`` (n, ...), one invoke per row."""
    shape = tuple(int(v) for v in interpreter.get_input_details(0)["shape"])
    n_out = int(np.prod(interpreter.get_output_details(0)["shape"]))
    q = np.asarray(q, dtype=np.int8)
    out = np.empty((len(q), n_out), dtype=np.int8)
    for k, row in enumerate(q):
        interpreter.set_input(row.reshape(shape), 0)
        interpreter.invoke()
        out[k] = np.asarray(interpreter.get_output(0)).reshape(-1)
    return out
