"""One stopwatch for every measured duration: a step, a pipeline run, a restore drill.

Why: a pattern that reports "the MERGE took 1.4 s" must measure it one way everywhere, not with
a hand-rolled pair of `perf_counter()` calls per site. A `Stopwatch` is a plain picklable value,
so a streaming sink running in another process can carry one too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Stopwatch:
    """Wall time from creation until `stop()`; `seconds` reads the time so far while it runs."""

    started: float = field(default_factory=time.perf_counter)
    stopped: float | None = None

    @property
    def seconds(self) -> float:
        return (self.stopped if self.stopped is not None else time.perf_counter()) - self.started

    def stop(self) -> float:
        if self.stopped is None:
            self.stopped = time.perf_counter()
        return self.seconds


@contextlib.contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time a block: `with stopwatch() as watch: ...` then `watch.seconds`."""
    watch = Stopwatch()
    try:
        yield watch
    finally:
        watch.stop()
