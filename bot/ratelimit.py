"""A per-user limit on questions (a sliding window), so one user cannot hog the bot.

Telegram's own flood limits on what the bot sends are handled elsewhere (PTB's
AIORateLimiter); this limits what users ask. A user over the limit is told so once
per window rather than once per message, so the refusals cannot become a flood.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` seconds per key; ``limit`` 0 disables it."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[int, deque[float]] = {}
        self._told_until: dict[int, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: int) -> float:
        """Record an event for ``key``; 0.0 if allowed, else the seconds until it would be."""
        if self.limit <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return max(0.01, events[0] + self.window - now)
            events.append(now)
            if len(self._events) > self.max_keys:
                self._prune(now)
            return 0.0

    def should_tell(self, key: int, wait: float) -> bool:
        """True the first time a limited user is refused in this stretch of waiting."""
        now = self.clock()
        with self._lock:
            if self._told_until.get(key, 0.0) > now:
                return False
            self._told_until[key] = now + wait
            return True

    def _prune(self, now: float) -> None:
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]:
            del self._events[key]
            self._told_until.pop(key, None)
