"""The monitor's epoch table: how frames and the host's verdicts fill the rows, and the gap-free
prefix of completed rows that results.csv gets as the night goes."""

from __future__ import annotations

import numpy as np

from host_tools import constants as C
from host_tools.device import protocol as P
from host_tools.device.epoch_table import SOURCE_GAP, SOURCE_LOST, EpochTable


def _result(epoch: int, stage: int, conf: float, escalated: bool = False, incomplete: bool = False) -> P.Result:
    return P.Result(epoch, C.STAGE_UNKNOWN if incomplete else stage, escalated,
                    P.FLAG_INCOMPLETE if incomplete else 0, (0,) * 5, conf)


def test_frames_fill_rows_and_only_the_first_final_counts() -> None:
    t = EpochTable(10, 4, expert=np.array([-1] * 10 + [0, 2, -1, 4]))
    assert [r.expert_stage for r in t] == [0, 2, None, 4]
    assert t.on_result(_result(10, 2, 0.9)).edge_stage == 2
    assert t.on_result(_result(99, 2, 0.9)) is None  # not a streamed epoch
    assert t.on_result(_result(11, 0, 0.0, incomplete=True)).edge_stage is None
    t.on_escalate(P.Escalate(12, np.zeros(C.EPOCH_SAMPLES, np.int16)))
    assert t.rows[12].escalated and t.reported_upto == 12
    row = t.on_final(P.Final(10, 3, 1))
    assert row is not None and (row.final_stage, row.final_source) == (3, "cloud")
    assert t.on_final(P.Final(10, 1, 0)) is None and t.rows[10].final_stage == 3  # a repeated FINAL
    assert t.on_final(P.Final(11, C.STAGE_UNKNOWN, 3)).final_stage is None
    t.on_cloud_answer(12, 4)
    assert t.rows[12].cloud_stage == 4 and not t.all_final()


def test_take_done_hands_out_a_gap_free_prefix_once() -> None:
    t = EpochTable(0, 5)
    t.on_final(P.Final(1, 2, 0))  # epoch 0 still waits for its escalation
    assert t.take_done() == []
    t.on_final(P.Final(0, 1, 2))
    assert [r.epoch for r in t.take_done()] == [0, 1]
    assert t.take_done() == []
    assert t.close(t.open_epochs(before=3), SOURCE_GAP)[0].epoch == 2
    # A gap counts as reported: flow control after a reset must not wait for it (30 s stalls).
    assert t.reported_upto == 2
    t.on_final(P.Final(4, 0, 0))
    assert [r.epoch for r in t.take_done()] == [2]  # 3 is open: 4 waits
    t.close(t.open_epochs(), SOURCE_LOST)
    assert [(r.epoch, r.final_source) for r in t.take_done()] == [(3, "lost"), (4, "edge")]
    assert [r.epoch for r in t.saved_rows()] == list(range(5)) and t.all_final()
    # The copies handed out do not change with the table; saved_rows are the live rows.
    t.on_cloud_answer(0, 4)
    assert t.saved_rows()[0].cloud_stage == 4
