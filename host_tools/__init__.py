"""SleepEdge host tools: data, models, export, device monitor, cloud escalation, benchmarks.

Flow: EDF -> epochs -> models -> artifacts -> firmware -> device -> results -> report.
Each stage is one module; heavy dependencies (TensorFlow, MNE) are imported inside functions so
that ``sleepedge --help`` stays fast.
"""

__version__ = "0.1.0"
