"""Stopgap DREAMS reader for the adapt tests (until ``sleepedge data convert`` lands).

Converts excerpts 1-4 of ``../shared/data/dreams-spindles`` into 100-Hz Sleep-EDF-shaped pairs in
a temporary folder (never in the repository: the licence forbids distributing derived files).
Each excerpt is one person: ``SC49<n>1E0-PSG.edf`` (subject ``SC49<n>``) with its real channel
label (``EEG C3-A1`` or ``EEG CZ-A1``) and a hypnogram of one stage per 30-s epoch, the majority
of the six 5-s R&K codes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np

DREAMS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dreams-spindles"
#: Sampling rate of each excerpt (not stored in the files; from the database's README).
RATES = {1: 100, 2: 200, 3: 50, 4: 200}
#: R&K code per 5 s -> Sleep-EDF annotation text.
RK = {5: "Sleep stage W", 4: "Sleep stage R", 3: "Sleep stage 1", 2: "Sleep stage 2",
      1: "Sleep stage 3", 0: "Sleep stage 4"}


def available() -> bool:
    """Whether the DREAMS excerpts are present next to the worktree."""
    return all((DREAMS / f"excerpt{n}.txt").is_file() for n in RATES)


def convert(out: Path, excerpts: tuple[int, ...] = (1, 2, 3, 4)) -> Path:
    """Write ``out/SC49<n>1E0-PSG.edf`` + ``SC49<n>1EC-Hypnogram.edf`` for each excerpt."""
    from scipy.signal import resample_poly

    from host_tools.data import edf_io

    out.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2000, 1, 1, 23, 0, 0)
    for n in excerpts:
        lines = (DREAMS / f"excerpt{n}.txt").read_text().split("\n")
        channel = lines[0].strip().strip("[]")
        x = np.array([float(v) for v in lines[1:] if v.strip()], dtype=np.float64)
        fs = RATES[n]
        y = resample_poly(x, 100, fs) if fs != 100 else x
        codes = [int(v) for v in (DREAMS / f"Hypnogram_excerpt{n}.txt").read_text().split()[1:]]
        n_ep = min(len(codes) // 6, len(y) // 3000)
        stages = [Counter(codes[6 * k: 6 * k + 6]).most_common(1)[0][0] for k in range(n_ep)]
        edf_io.write_psg(out / f"SC49{n}1E0-PSG.edf", {f"EEG {channel}": y[: n_ep * 3000]}, 100, start)
        edf_io.write_hypnogram(out / f"SC49{n}1EC-Hypnogram.edf", [30.0 * k for k in range(n_ep)],
                               [30.0] * n_ep, [RK[s] for s in stages], start)
    return out


if __name__ == "__main__":
    import sys

    print(convert(Path(sys.argv[1])))
