"""The monitor's epoch table: one :class:`EpochRow` per streamed epoch, and how the device's
RESULT / ESCALATE / FINAL frames and the host's own verdicts (gap, lost) fill it in.

The table holds no lock and does no I/O: the monitor calls it with its lock held, from the
reader thread (frames) and from the streaming thread (gaps, the end of the night).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np

from host_tools import constants as C
from host_tools.device import protocol as P

#: Final sources beyond the device's own: the host's verdict for epochs without a FINAL frame.
SOURCE_GAP = "gap"  #: the device rebooted (or the link dropped) before finishing the epoch
SOURCE_LOST = "lost"  #: the device's FINAL never arrived intact (corrupted link)
CSV_FIELDS = ("epoch", "onset_s", "edge_stage", "edge_confidence", "escalated", "cloud_stage",
              "final_stage", "final_source", "expert_stage", "quality")


def stage_name(s: int | None) -> str:
    """``"N2"`` for 2; ``""`` for no (or an out-of-range) stage."""
    return C.STAGES[s] if s is not None and 0 <= s < C.N_CLASSES else ""


@dataclass
class EpochRow:
    """Everything known about one streamed epoch."""

    epoch: int
    edge_stage: int | None = None
    edge_confidence: float | None = None
    escalated: bool = False
    incomplete: bool = False
    cloud_stage: int | None = None
    final_stage: int | None = None
    final_source: str | None = None
    expert_stage: int | None = None
    quality: str = ""  #: the device's signal-quality verdict ("ok", "flat", ...; "" before RESULT)

    @property
    def onset_s(self) -> int:
        return self.epoch * C.EPOCH_S

    def csv_row(self) -> dict[str, Any]:
        """The row as results.csv writes it (see :data:`CSV_FIELDS`)."""
        return {
            "epoch": self.epoch, "onset_s": self.onset_s, "edge_stage": stage_name(self.edge_stage),
            "edge_confidence": "" if self.edge_confidence is None else f"{self.edge_confidence:.4f}",
            "escalated": int(self.escalated), "cloud_stage": stage_name(self.cloud_stage),
            "final_stage": stage_name(self.final_stage), "final_source": self.final_source or "",
            "expert_stage": stage_name(self.expert_stage), "quality": self.quality,
        }


class EpochTable:
    """The rows of epochs ``first .. first + n - 1`` and the highest epoch the device reported on.

    Parameters
    ----------
    first, n
        The streamed epochs.
    expert
        Per-epoch expert class index from the start of the recording (-1 unknown), or None.
    """

    def __init__(self, first: int, n: int, expert: np.ndarray | None = None) -> None:
        self.first = first
        self.rows: dict[int, EpochRow] = {e: EpochRow(e) for e in range(first, first + n)}
        self.reported_upto = first - 1  #: highest epoch the device said anything about
        self.next_unsaved = first  #: rows before this one were handed out by take_done
        if expert is not None:
            for e, row in self.rows.items():
                if e < len(expert) and expert[e] >= 0:
                    row.expert_stage = int(expert[e])

    def __iter__(self) -> Iterator[EpochRow]:
        """The rows in epoch order."""
        return iter([self.rows[e] for e in sorted(self.rows)])

    def __len__(self) -> int:
        return len(self.rows)

    # -- the device's frames
    def on_result(self, msg: P.Result) -> EpochRow | None:
        """The edge label of an epoch; returns its row (None for an epoch not streamed)."""
        row = self.rows.get(msg.epoch)
        if row is None:
            return None
        row.incomplete = msg.incomplete or msg.stage >= C.N_CLASSES
        row.edge_stage = None if row.incomplete else msg.stage
        row.edge_confidence = None if row.incomplete else float(msg.confidence)
        row.escalated = bool(msg.escalated)
        row.quality = msg.quality
        self.reported_upto = max(self.reported_upto, msg.epoch)
        return row

    def on_escalate(self, msg: P.Escalate) -> None:
        self.reported_upto = max(self.reported_upto, msg.epoch)
        if msg.epoch in self.rows:
            self.rows[msg.epoch].escalated = True

    def on_final(self, msg: P.Final) -> EpochRow | None:
        """The final label of an epoch; returns its row when this FINAL completed it (the first
        FINAL of a streamed epoch), else None."""
        row = self.rows.get(msg.epoch)
        if row is None or row.final_source is not None:
            return None
        row.final_source = msg.source_name
        row.final_stage = msg.stage if msg.stage < C.N_CLASSES else None
        self.reported_upto = max(self.reported_upto, msg.epoch)
        return row

    def on_cloud_answer(self, epoch: int, cloud_stage: int | None) -> None:
        row = self.rows.get(epoch)
        if row is not None and cloud_stage is not None:
            row.cloud_stage = cloud_stage

    # -- the host's verdicts
    def open_epochs(self, before: int | None = None) -> list[int]:
        """Epochs without a final label (only those before epoch ``before`` when given)."""
        return [e for e, r in sorted(self.rows.items())
                if r.final_source is None and (before is None or e < before)]

    def close(self, epochs: list[int], source: str) -> list[EpochRow]:
        """Give ``epochs`` (still open) the final source ``source`` (gap, lost) and no stage.
        They count as reported: flow control must not wait for epochs the device will never
        report (those before a reset)."""
        closed = []
        for e in epochs:
            row = self.rows[e]
            if row.final_source is None:
                row.final_source = source
                closed.append(row)
                self.reported_upto = max(self.reported_upto, e)
        return closed

    def all_final(self) -> bool:
        return all(r.final_source for r in self.rows.values())

    # -- saving as the night goes
    def take_done(self) -> list[EpochRow]:
        """Copies of the completed rows not handed out yet, in epoch order, up to the first
        epoch still open (so what was handed out is always a gap-free prefix of the night)."""
        done = []
        while (row := self.rows.get(self.next_unsaved)) is not None and row.final_source is not None:
            done.append(replace(row))
            self.next_unsaved += 1
        return done

    def saved_rows(self) -> list[EpochRow]:
        """The rows :meth:`take_done` handed out (as they are now: a late cloud answer included)."""
        return [self.rows[e] for e in range(self.first, self.next_unsaved)]
