"""SleepEdge host tools: data, models, export, device monitor, cloud escalation, benchmarks.

Flow: EDF -> epochs -> models -> artifacts -> firmware -> device -> results -> report.
Each stage is one module; heavy dependencies (TensorFlow, MNE) are imported inside functions so
that ``sleepedge --help`` stays fast.
"""

__version__ = "0.1.0"


def shown_path(path: "str | object") -> str:
    """``path`` as written into reports and committed artifacts: relative to the repository
    when it lies inside it (so a clone elsewhere reads the same text), else absolute."""
    from pathlib import Path

    p = Path(str(path)).resolve()
    root = Path(__file__).resolve().parent.parent
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)
