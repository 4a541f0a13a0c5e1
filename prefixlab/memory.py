"""Peak memory of one job, not of the worker process that runs it (a sweep worker runs many jobs).

CUDA: the peak of `torch.cuda.max_memory_allocated` after resetting it when the job starts. CPU (Linux): the
process's peak resident set size (VmHWM) after resetting it to the current size when the job starts (writing
5 to /proc/self/clear_refs); it includes what the process already held then (reported as `start_bytes`).
Where the reset is impossible, the lifetime peak is reported and named as such.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


class JobMemory:
    """Start at a job's beginning; `report()` at its end gives the job's peak and what it measured."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset = False
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.start = torch.cuda.memory_allocated(device)
            self.reset = True
            return
        self.start = _status_bytes("VmRSS")
        try:
            _CLEAR_REFS.write_text("5")
            self.reset = True
        except OSError:
            pass

    def report(self) -> dict[str, Any]:
        """{"peak_memory_bytes", "peak_memory_measure", "start_bytes"} for the job so far."""
        if self.device.type == "cuda":
            return {
                "peak_memory_bytes": torch.cuda.max_memory_allocated(self.device),
                "peak_memory_measure": "cuda max_memory_allocated since the job started (peak reset)",
                "start_bytes": self.start,
            }
        if self.reset:
            measure = "process peak RSS (VmHWM) since the job started (reset at start; includes start_bytes)"
        else:
            measure = "process peak RSS over its lifetime (VmHWM; could not be reset)"
        return {
            "peak_memory_bytes": _status_bytes("VmHWM"),
            "peak_memory_measure": measure,
            "start_bytes": self.start,
        }
