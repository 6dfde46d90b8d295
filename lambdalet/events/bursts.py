"""Acceptance first: how many asynchronous deliveries may start while a burst of events arrives.

Accepting an event (HTTP, a group commit, the 202) and delivering one (an invocation) share the
server's one event loop and cost it about the same. At full speed, delivery halved how fast a
burst was accepted, which is what callers wait for; the backlog can as well run a moment later.
So while events arrive densely (more than one per BURST_GAP_S on average), workers start at most
DELIVERY_SHARE deliveries per event accepted — the first event of a burst, and a lone one, at
once. A burst ends when arrivals stop for IDLE_S, thin out, or after MAX_S: a steady stream the
server can both accept and deliver is never held back, and a long overload is delivered at full
speed so that its backlog stays bounded (acceptance then slows, which is the right back-pressure).
"""

from __future__ import annotations

IDLE_S = 0.02  # no event for this long: the burst is over
BURST_GAP_S = 0.001  # denser than one event per millisecond on average (> 1,000/s) is a burst
MAX_S = 3.0  # longer than this is not a burst but an overload: deliver at full speed
DELIVERY_SHARE = 0.1  # deliveries that may start per event accepted during a burst
_SMOOTHING = 0.2  # weight of the newest gap in the moving average


class BurstGate:
    """Counts arrivals and hands out delivery starts; times are the event loop's clock."""

    def __init__(self, most_credits: float) -> None:
        self._most = most_credits  # the number of workers: more could not be used at once
        self._last = float("-inf")  # the last arrival
        self._start = float("-inf")  # the first arrival of the current run of arrivals
        self._gap = IDLE_S  # moving average of the time between arrivals
        self.credits = 0.0  # deliveries that may still start during this burst

    def accepted(self, now: float) -> None:
        gap = now - self._last
        if gap >= IDLE_S:  # a new run of arrivals: its first event runs at once
            self._start, self._gap, self.credits = now, IDLE_S, 1.0
        else:
            self._gap += _SMOOTHING * (gap - self._gap)
        self._last = now
        self.credits = min(self.credits + DELIVERY_SHARE, self._most)

    def bursting(self, now: float) -> bool:
        return now - self._last < IDLE_S and self._gap < BURST_GAP_S and now - self._start < MAX_S

    def may_start(self, now: float) -> bool:
        """Whether a delivery may start now; one that may uses up a credit during a burst."""
        if not self.bursting(now):
            return True
        if self.credits >= 1.0:
            self.credits -= 1.0
            return True
        return False

    def startable(self, now: float, waiting: int) -> int:
        """How many of `waiting` deliveries may start now (without using credits up)."""
        return min(waiting, int(self.credits)) if self.bursting(now) else waiting

    def ends_by(self) -> float:
        """When the burst is over at the latest unless more events arrive (then ask again)."""
        return min(self._last + IDLE_S, self._start + MAX_S)
