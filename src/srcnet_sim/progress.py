"""Step logging with UTC timestamps, and progress that suits a terminal or a pod log."""

from __future__ import annotations

import logging
import os
import sys
import time

logger = logging.getLogger("srcnet_sim")


LOG_LEVEL_ENV = "SRCNET_SIM_LOG_LEVEL"


def configure_logging(level: int | None = None) -> None:
    """One line per step: '2026-01-01T00:00:00Z srcnet-sim INFO message' on stderr; `level` defaults to
    $SRCNET_SIM_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), else INFO."""
    if level is None:
        name = os.environ.get(LOG_LEVEL_ENV, "INFO").strip().upper()
        level = logging.getLevelName(name) if name in ("DEBUG", "INFO", "WARNING", "ERROR") else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)sZ srcnet-sim %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


class Progress:
    """Progress over units of work of unequal size (blocks): 'description: 42 % (n/total blocks), ETA 1m05s'
    logged at most every `every_s` seconds and at the end; the ETA counts only the work done in this run."""

    def __init__(self, total_units: float, total_items: int, description: str, done_units: float = 0.0,
                 every_s: float = 30.0) -> None:
        self.total_units, self.total_items, self.description = total_units, total_items, description
        self.done_units, self.items, self.every_s = done_units, 0, every_s
        self._start_units = done_units
        self._start = self._last = time.monotonic()

    def advance(self, units: float) -> None:
        self.done_units += units
        self.items += 1
        now = time.monotonic()
        if now - self._last >= self.every_s or self.items == self.total_items:
            self._last = now
            rate = (self.done_units - self._start_units) / max(now - self._start, 1e-9)
            eta = (self.total_units - self.done_units) / rate if rate > 0 else 0.0
            logger.info("%s: %d %% (%d/%d blocks), ETA %s", self.description,
                        int(100 * self.done_units // max(self.total_units, 1)), self.items, self.total_items,
                        duration(eta))


def duration(seconds: float) -> str:
    """'1h02m10s' or '5m07s'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
