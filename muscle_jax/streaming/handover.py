"""The bounded hand-over from the thread that reads and prepares frames to the estimator.

Policy (newest first): at most `capacity` frames wait. The estimator takes every waiting frame at
once and estimates them as one batch, so a short stall is absorbed without loss. When a frame
arrives and `capacity` frames are already waiting, the oldest waiting frame is dropped: a live
estimate is worth more fresh than complete, and the latency of the frames that are estimated stays
bounded by the queue instead of growing with the backlog. A dropped frame keeps only its account
(number, times, status `dropped`; its pixels are released), which the estimator receives in frame
order with the next batch, so that every drop is written out and counted. `put` never blocks the
reader, and memory never grows with the backlog.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")


@dataclasses.dataclass(frozen=True)
class Taken(Generic[Item]):
    """What the estimator receives: frames dropped since the last take (accounts only), the waiting
    frames (oldest first), and whether the reader has finished (with its error, if it failed)."""

    dropped: list
    items: list
    finished: bool
    error: BaseException | None


class NewestFirst(Generic[Item]):
    """A bounded, non-blocking hand-over with the newest-first drop policy (module docstring)."""

    def __init__(self, capacity: int, account_of: Callable[[Item], Item]):
        if capacity < 1:
            raise ValueError(f"the hand-over needs room for at least one frame, got capacity={capacity}")
        self.capacity = capacity
        self._account_of = account_of
        self._waiting: collections.deque = collections.deque()
        self._dropped: list = []
        self._finished = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self.dropped_total = 0
        self.max_waiting = 0

    def put(self, item: Item) -> None:
        with self._changed:
            if len(self._waiting) == self.capacity:
                self._dropped.append(self._account_of(self._waiting.popleft()))
                self.dropped_total += 1
            self._waiting.append(item)
            self.max_waiting = max(self.max_waiting, len(self._waiting))
            self._changed.notify()

    def finish(self, error: BaseException | None = None) -> None:
        """No more frames will come (the source ended, or failed with `error`)."""
        with self._changed:
            self._finished, self._error = True, error
            self._changed.notify()

    def take(self, timeout_s: float) -> Taken[Item]:
        """Everything waiting (possibly nothing, after `timeout_s`), and the drops before it."""
        with self._changed:
            if not self._waiting and not self._dropped and not self._finished:
                self._changed.wait(timeout_s)
            taken = Taken(self._dropped, list(self._waiting), self._finished, self._error)
            self._dropped = []
            self._waiting.clear()
            return taken
