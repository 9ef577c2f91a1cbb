"""A bounded, thread-safe, per-process LRU whose entries expire (the API's fast path, signed URLs)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class LocalCache:
    """Up to ``max_entries`` values for one process, each until the time it was set to expire."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def set(self, key, value, seconds: float) -> None:
        with self.lock:
            self.entries[key] = (value, time.monotonic() + seconds)
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
