"""What the progress bar says about time: an estimate of the time left, from the pace so
far of the counted phase it shows (Qt-free; the window keeps one per job)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

#: an estimate is shown once a phase has run this long (earlier paces are noise)
MIN_SECONDS = 1.0


def _phase(total: int, what: str) -> tuple[int, str]:
    """The phase a progress report belongs to: its text without its numbers ("step 3 (3 of
    10): adapting on 64 images" and "step 4 (4 of 10): ..." are one phase, counting the
    steps), and its total."""
    return total, re.sub(r"\d[\d,.]*", "#", what)


def format_seconds(seconds: float) -> str:
    """``"~12 s left"``, ``"~3 min left"``, ``"~1.5 h left"``."""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s left"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min left"
    return f"~{seconds / 3600:.1f} h left"


_STEP_OF = re.compile(r"\((\d+) of (\d+)\)")  # "step 44 (34 of 100): ..."


class TimeLeft:
    """The time left of each counted phase (``done`` of ``total``), from its pace since it
    was first reported: a phase that restarts (``done`` went back) starts over; nothing is
    said before :data:`MIN_SECONDS` of it, nor for an uncounted one (``total`` <= 0).

    A report inside a request of several steps ("step 44 (34 of 100): probe: ...") gives
    the time left of the whole request instead, from the pace of its steps ("run ~2 min
    left"): the phases of one step are short, and what a user waits for is the run."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._phases: dict[tuple[int, str], tuple[float, int, int]] = {}  # t0, done0, last
        self._run: tuple[float, int, int, float, int] | None = None  # t0, k0, k, t_k, n

    def reset(self) -> None:
        """A new job: forget every phase."""
        self._phases.clear()
        self._run = None

    def update(self, done: int, total: int, what: str = "") -> str:
        """Record a report; ``"~12 s left"``, ``"run ~2 min left"`` or ``""`` when there is
        no estimate yet."""
        now = self.clock()
        steps = _STEP_OF.search(what)
        if steps is not None:
            return self._run_left(int(steps[1]), int(steps[2]), now)
        return self._left(_phase(total, what), done, total, now)

    def _run_left(self, k: int, n: int, now: float) -> str:
        """At step ``k`` of ``n``: the pace of the steps done since the first report
        (each step's first report is its predecessor's end), less the time the current
        step has run already (yet at least the steps after it)."""
        run = self._run
        if run is None or run[4] != n or k < run[2]:  # a new request (or a new count)
            run = (now, k, k, now, n)
        t0, k0, last, t_last, _n = run
        if k > last:
            last, t_last = k, now
        self._run = (t0, k0, last, t_last, n)
        if last == k0 or t_last - t0 < MIN_SECONDS:
            return ""
        pace = (t_last - t0) / (last - k0)
        return "run " + format_seconds(max(pace * (n - k + 1) - (now - t_last), pace * (n - k)))

    def _left(self, key, done: int, total: int, now: float) -> str:
        if total <= 0:
            return ""
        t0, done0, last = self._phases.get(key, (now, done, done))
        if done < last:  # the phase started again (the next step's probe)
            t0, done0 = now, done
        self._phases[key] = (t0, done0, done)
        elapsed = now - t0
        if done <= done0 or done >= total or elapsed < MIN_SECONDS:
            return ""
        return format_seconds(elapsed * (total - done) / (done - done0))
