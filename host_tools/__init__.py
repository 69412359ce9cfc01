"""SleepEdge host tools: data, models, export, device monitor, cloud escalation, benchmarks.

Flow: EDF -> epochs -> models -> artifacts -> firmware -> device -> results -> report.
Each stage is one subpackage (data, learn, deploy, cloud, device, bench), and a stage imports only
from earlier stages and from the helpers at this root; heavy dependencies (TensorFlow, MNE) are
imported inside functions so that ``sleepedge --help`` stays fast.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository checkout (firmware/, models/ and docs/ live here).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: ``../shared`` beside the checkout: real Sleep-EDF metadata, hypnograms and statistics.
SHARED_DIR = REPO_ROOT.parent / "shared"


def shown_path(path: "str | object") -> str:
    """``path`` as written into reports and committed artifacts: relative to the repository
    when it lies inside it (so a clone elsewhere reads the same text), else absolute."""
    p = Path(str(path)).resolve()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(p)
