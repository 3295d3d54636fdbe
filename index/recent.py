"""A bounded cache of what answering worked out about passages it has met.

A bot answering for months over a million-passage archive meets most of its
passages sooner or later; a cache that only grows would end up holding the
analysis of all of them. This one keeps the recently used entries only.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most about ``2 × size`` entries, the recently used ones; safe to share between threads.

    Two generations: new entries go into the young one; when it holds ``size``
    it becomes the old one, and the old one before it is dropped. An entry found
    in the old generation is put back into the young one. Only whole
    dictionaries are swapped, so a reader in another thread sees an entry or
    none (a lost entry is worked out again), never half of one.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a cache needs room for at least one entry")
        self.size = size
        self._young: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._young.get(key)
        if value is None:
            value = self._old.get(key)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: K, value: V) -> V:
        young = self._young
        if len(young) >= self.size:
            self._old, young = young, {}
            self._young = young
        young[key] = value
        return value

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
