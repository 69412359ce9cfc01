"""Terminal live view of a monitoring session (rich), with a plain-line fallback.

On a TTY it shows the current epoch, its stage and confidence, escalations, a scrolling
hypnogram, progress and link counters, redrawn a few times a second. When stdout is not a TTY
(CI logs, pipes) it prints one plain line per finished epoch instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from host_tools import constants as C

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

#: Hypnogram rows, top to bottom, in the usual clinical order.
HYPNO_ORDER: tuple[int, ...] = (0, 4, 1, 2, 3)  # W, REM, N1, N2, N3
STAGE_COLORS: dict[int, str] = {0: "yellow", 1: "cyan", 2: "blue", 3: "magenta", 4: "red"}


@dataclass
class ViewState:
    """Everything the view shows; the monitor fills it in, the view only reads it."""

    title: str = ""
    device: str = ""
    total_epochs: int = 0
    done_epochs: int = 0
    current_epoch: int | None = None
    current_stage: int | None = None
    current_confidence: float | None = None
    current_source: str = ""
    escalations: int = 0
    answered: int = 0
    with_context: int = 0  #: answers that used the night's edge history
    failed: int = 0
    resets: int = 0
    gap_epochs: int = 0
    #: (final stage or None, escalated) of the most recent epochs, oldest first.
    recent: list[tuple[int | None, bool]] = field(default_factory=list)
    link: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    streamed_s: float = 0.0  #: recording time sent so far


def stage_name(stage: int | None) -> str:
    return C.STAGES[stage] if stage is not None and 0 <= stage < C.N_CLASSES else "-"


class LiveView:
    """Context manager showing a :class:`ViewState`.

    Parameters
    ----------
    plain
        Force plain lines (True) or the rich view (False); default: rich only on a TTY.
    console
        A rich console to draw on (tests pass one recording to a string).
    width
        Epochs shown in the scrolling hypnogram.
    """

    def __init__(self, plain: bool | None = None, console: Console | None = None, width: int = 80) -> None:
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.console = console
        self.width = width
        self._live: Any = None
        self._last = 0.0

    def __enter__(self) -> LiveView:
        if not self.plain:
            from rich.console import Console
            from rich.live import Live

            self.console = self.console or Console()
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, state: ViewState, force: bool = False) -> None:
        """Redraw (rich mode), at most ~5 times a second unless ``force``."""
        if self._live is None:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.2:
            self._last = now
            self._live.update(self.render(state))

    def epoch_line(self, epoch: int, onset_s: float, edge: int | None, conf: float | None,
                   final: int | None, source: str) -> None:
        """One finished epoch: printed as a plain line when not drawing the rich view."""
        if not self.plain:
            return
        h, rem = divmod(int(onset_s), 3600)
        conf_txt = f"{conf:.2f}" if conf is not None else "-"
        print(f"epoch {epoch:5d} {h:02d}:{rem // 60:02d}:{rem % 60:02d}  edge {stage_name(edge):>3} {conf_txt}"
              f"  final {stage_name(final):>3} ({source})", flush=True)

    def message(self, text: str) -> None:
        """A notable event (device reset, cloud failure): a line in either mode."""
        if self.plain or self.console is None:
            print(text, flush=True)
        else:
            self.console.print(text)

    # -- rendering
    def hypnogram_lines(self, recent: list[tuple[int | None, bool]]) -> list[tuple[str, list[tuple[str, str]]]]:
        """Rows of (label, [(char, style)]) for the last ``width`` epochs."""
        tail = recent[-self.width:]
        rows = []
        for s in HYPNO_ORDER:
            cells = []
            for stage, escalated in tail:
                if stage == s:
                    cells.append(("▲" if escalated else "█", STAGE_COLORS[s]))
                elif stage is None:
                    cells.append(("·", "dim"))
                else:
                    cells.append((" ", ""))
            rows.append((C.STAGES[s], cells))
        return rows

    def render(self, st: ViewState) -> RenderableType:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        cur = "-" if st.current_epoch is None else str(st.current_epoch)
        conf = "-" if st.current_confidence is None else f"{st.current_confidence:.2f}"
        stage_txt = Text(stage_name(st.current_stage), style=STAGE_COLORS.get(st.current_stage or -1, "") + " bold")
        head.add_row("epoch", Text.assemble(cur, "  stage ", stage_txt, f"  confidence {conf}  ({st.current_source or '-'})"))
        head.add_row("escalations", f"{st.escalations} sent, {st.answered} answered by the cloud "
                                    f"({st.with_context} with the night's context), {st.failed} failed")
        if st.resets or st.gap_epochs:
            head.add_row("device resets", Text(f"{st.resets} (gap: {st.gap_epochs} epochs without result)", style="red"))
        link = "  ".join(f"{k} {v}" for k, v in st.link.items())
        head.add_row("link", link or "-")

        hyp = Text()
        for label, cells in self.hypnogram_lines(st.recent):
            hyp.append(f"{label:>3} ", style="bold")
            for ch, style in cells:
                hyp.append(ch, style=style)
            hyp.append("\n")
        hyp.append("    █ final label   ▲ escalated   · no result", style="dim")

        frac = st.done_epochs / st.total_epochs if st.total_epochs else 0.0
        rate = st.streamed_s / st.elapsed_s if st.elapsed_s > 0 else 0.0
        prog = Table.grid(padding=(0, 1))
        prog.add_row(ProgressBar(total=max(st.total_epochs, 1), completed=st.done_epochs, width=40),
                     f"{st.done_epochs}/{st.total_epochs} epochs ({100 * frac:.0f} %)  "
                     f"{st.elapsed_s:.0f} s elapsed, {rate:.0f}x real time")
        return Panel(Group(head, Text(""), hyp, prog), title=st.title, subtitle=st.device)
