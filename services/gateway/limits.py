"""Per-device rate limiting: a phone may send about as fast as the DAIS page did, not faster.

The gateway is open to any phone on the network, so one misbehaving page (or a script
posing as many) must not be able to flood the brokers for everyone else: each device id
gets its own budget, and only the events over it are refused (429), never the whole batch
or other devices' events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence


class RateLimiter:
    """A token bucket per device: `rate` events/s on average, bursts up to one second's worth.

    The burst allowance lets a page send its ~1 s batch in one request. Buckets that have
    refilled completely carry no information and are pruned, so random device ids cannot
    grow memory without bound.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._prune_at = 10_000

    def admit(self, devices: Sequence[str]) -> list[bool]:
        """Take one token per event, in order, all at the same instant (so a batch is fair)."""
        with self._lock:
            now = self._clock()
            admitted = [self._take(device, now) for device in devices]
            if len(self._buckets) > self._prune_at:
                self._prune(now)
            return admitted

    def _take(self, device: str, now: float) -> bool:
        tokens, last = self._buckets.get(device, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[device] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    def _prune(self, now: float) -> None:
        self._buckets = {
            device: (tokens, last)
            for device, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.capacity
        }
        self._prune_at = max(10_000, 2 * len(self._buckets))
