"""Progress bars for long management commands, fed by the services' stage callbacks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

# What long services report to: (stage, done so far, total or None when unknown).
Progress = Callable[[str, int, int | None], None]


def progress_none(stage: str, done: int, total: int | None) -> None:
    """A ``Progress`` that shows nothing."""


class StageBars:
    """A ``progress(stage, done, total)`` callback that shows one tqdm bar per stage.

    Services report progress as plain numbers so they stay free of any UI; this
    turns those reports into bars with rate and ETA on stderr. Bars switch off
    by themselves when stderr is not a terminal (logs, tests) unless forced.
    """

    def __init__(self, *, units: dict[str, str] | None = None, file: TextIO | None = None, enabled: bool | None = None):
        self.units = units or {}
        self.file = file or sys.stderr
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage == "done":
            self.close()
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=f"{stage:<9}",
                unit=self.units.get(stage, "it"),
                unit_scale=True,
                file=self.file,
                disable=None if self.enabled is None else not self.enabled,
                mininterval=0.5,
                dynamic_ncols=True,
            )
        if self.bar is not None:
            if total is not None and self.bar.total != total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            if self.bar.total is not None and self.bar.n < self.bar.total:
                # Stage totals are upper bounds (e.g. all videos, while only those with
                # counters get scores): a finished stage shows what it actually did.
                self.bar.total = self.bar.n
                self.bar.refresh()
            self.bar.close()
        self.bar = None
        self.stage = None
