"""Progress of long reads on standard error: rows, requests, rows/s and throttling pauses.

On by default where a person watches (a terminal, or a Jupyter/IPython kernel), off otherwise;
``connect(progress=True/False)`` decides. Nothing is shown for reads that end within a second.
"""

from __future__ import annotations

import sys
import time
from typing import Any

#: Seconds before the first line, and between lines.
DELAY = 1.0
INTERVAL = 0.25


def watched() -> bool:
    """Whether someone is likely watching: standard error is a terminal, or a notebook runs us."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """One read's progress line."""

    def __init__(self, session: Any, enabled: bool) -> None:
        self._session = session
        self.enabled = enabled
        self._start = time.monotonic()
        self._last = 0.0
        self._before: dict[str, Any] = session.stats() if enabled else {}
        self._shown = False
        self.rows = 0

    def line(self) -> str:
        stats = self._session.stats()
        secs = max(time.monotonic() - self._start, 1e-9)
        requests = stats["requests"] - self._before.get("requests", 0)
        text = f"{self.rows:,} rows, {requests:,} requests, {self.rows / secs:,.0f} rows/s, {secs:.1f} s"
        throttled = stats["throttled"] - self._before.get("throttled", 0)
        if throttled:
            waited = stats["throttle_wait_s"] - self._before.get("throttle_wait_s", 0.0)
            text += f", throttled {throttled}x ({waited:.0f} s waited)"
        return text

    def add(self, rows: int) -> None:
        self.rows += rows
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._start < DELAY or now - self._last < INTERVAL:
            return
        self._last = now
        self._shown = True
        sys.stderr.write("\r\x1b[2K" + self.line())
        sys.stderr.flush()

    def done(self) -> str | None:
        """Clears the line; returns the summary when one was shown."""
        if not self._shown:
            return None
        self._shown = False
        summary = self.line()
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()
        return summary
