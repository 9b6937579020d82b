"""latentlab/cpuclock.py: wall time, this process's CPU time and the hypervisor's steal."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentlab.cpuclock import CpuClock, host_ticks


def _stat(path: Path, user: int, steal: int, idle: int = 100) -> Path:
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 {steal} 7 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
    return path


def test_host_ticks_reads_the_steal_column_and_leaves_guest_time_out_of_the_total(tmp_path):
    assert host_ticks(_stat(tmp_path / "stat", user=300, steal=100)) == (100, 500)


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  1 2 3 4\n"])
def test_host_ticks_is_none_without_a_usable_cpu_line(tmp_path, text):
    (tmp_path / "stat").write_text(text)
    assert host_ticks(tmp_path / "stat") is None
    assert host_ticks(tmp_path / "missing") is None


def test_the_steal_share_is_the_stolen_part_of_the_ticks_since_the_start(tmp_path):
    stat = _stat(tmp_path / "stat", user=300, steal=100)
    clock = CpuClock.start(stat)
    _stat(stat, user=600, steal=200, idle=200)           # +300 user, +100 steal, +100 idle
    assert clock.elapsed(stat)["steal_share"] == pytest.approx(0.2)
    _stat(stat, user=300, steal=100)                      # no ticks since the start: unknown
    assert clock.elapsed(stat)["steal_share"] is None


def test_cpu_time_counts_this_process_work():
    clock = CpuClock.start()
    sum(i * i for i in range(300_000))
    out = clock.elapsed()
    assert out["cpu_s"] >= 0 and out["wall_s"] >= 0
    if host_ticks() is not None:                          # Linux: a share in [0, 1]
        assert out["steal_share"] is None or 0 <= out["steal_share"] <= 1
