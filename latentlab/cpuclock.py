"""Wall time beside the CPU time a job got and the share the hypervisor took ("steal").

On a virtual machine the hypervisor may give this guest's cores to other guests for a while.
The guest's kernel counts those ticks as ``steal`` in ``/proc/stat``: the job's wall time grows
although it does no more work. Code-prior fits of 13 and 14 epochs took 2,599 s and 3,612 s
(0.51 against 0.66 s a step) on two days; the steal share, recorded beside each wall time,
says whether the machine or the job was slower.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")


def host_ticks(stat: Path = PROC_STAT) -> tuple[int, int] | None:
    """(steal ticks, all ticks) of every core since boot, or None where the kernel has no
    ``/proc/stat`` (macOS, Windows) or an older format without the steal column.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = Path(d) / "stat"
    ...     _ = f.write_text("cpu  70 0 10 15 0 0 0 5 0 0\\ncpu0 35 0 5 8 0 0 0 2 0 0\\n")
    ...     host_ticks(f)
    (5, 100)
    """
    try:
        fields = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal: guest time is already inside user
    ticks = [int(v) for v in fields[1:9]]
    return ticks[7], sum(ticks)


@dataclass(frozen=True)
class CpuClock:
    """A started clock: ``elapsed()`` gives wall seconds, this process's CPU seconds and the
    host's steal share since the start.

    >>> clock = CpuClock.start()
    >>> out = clock.elapsed()
    >>> sorted(out), out["wall_s"] >= 0
    (['cpu_s', 'steal_share', 'wall_s'], True)
    """

    wall: float
    cpu: float
    ticks: tuple[int, int] | None

    @classmethod
    def start(cls, stat: Path = PROC_STAT) -> CpuClock:
        return cls(time.time(), time.process_time(), host_ticks(stat))

    def elapsed(self, stat: Path = PROC_STAT) -> dict:
        """{"wall_s", "cpu_s" (all threads), "steal_share" (None where it cannot be read)}."""
        now = host_ticks(stat)
        share = None
        if self.ticks is not None and now is not None and now[1] > self.ticks[1]:
            share = round((now[0] - self.ticks[0]) / (now[1] - self.ticks[1]), 4)
        return {"wall_s": round(time.time() - self.wall, 1),
                "cpu_s": round(time.process_time() - self.cpu, 1), "steal_share": share}
