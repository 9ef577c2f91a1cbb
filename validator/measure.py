"""Time and peak memory of one check.

Peak memory comes from the best source the machine has: on a GPU, ``torch.cuda.max_memory_allocated``
(reset before the check); on Linux, the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``), which counts torch's CPU tensors too; elsewhere ``tracemalloc`` (Python
allocations only). The source is named in the report.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


@dataclass
class Figures:
    seconds: float = 0.0
    peak_bytes: Optional[int] = None
    start_bytes: Optional[int] = None

    @property
    def added_bytes(self) -> Optional[int]:
        """How far the peak rose above the memory in use when the check started."""
        if self.peak_bytes is None or self.start_bytes is None:
            return None
        return max(0, self.peak_bytes - self.start_bytes)


def _status_bytes(field: str = "VmHWM:") -> Optional[int]:
    try:
        with open(_STATUS, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_source(device: str) -> str:
    """The source ``measured`` will use for ``device``: "cuda", "rss" or "tracemalloc"."""
    if device.startswith("cuda"):
        return "cuda"
    if os.path.exists(_CLEAR_REFS) and _status_bytes() is not None and _reset_hwm():
        return "rss"
    return "tracemalloc"


@contextmanager
def measured(source: str):
    """Yield a ``Figures`` filled with the wall time and the peak bytes of the ``with`` body."""
    figures = Figures()
    if source == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        figures.start_bytes = int(torch.cuda.memory_allocated())
    elif source == "rss":
        _reset_hwm()
        figures.start_bytes = _status_bytes("VmRSS:")
    else:
        started_tracing = not tracemalloc.is_tracing()
        if started_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        figures.start_bytes = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        yield figures
    finally:
        if source == "cuda":
            import torch

            torch.cuda.synchronize()
            figures.peak_bytes = int(torch.cuda.max_memory_allocated())
        elif source == "rss":
            figures.peak_bytes = _status_bytes()
        else:
            figures.peak_bytes = tracemalloc.get_traced_memory()[1]
            if started_tracing:
                tracemalloc.stop()
        figures.seconds = time.perf_counter() - start
