"""What the host was doing while a benchmark ran: the VM's CPU steal time, and the filesystem
a directory is on (bench/worker_throughput.py prints both beside its figures)."""

from __future__ import annotations

import os
from pathlib import Path


def steal_s(stat_file: Path = Path("/proc/stat")) -> float:
    """Seconds the hypervisor has kept this VM's CPUs from it since boot, summed over CPUs (the
    "steal" column of /proc/stat's first line); 0.0 where the file or the column is missing."""
    try:
        fields = stat_file.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if fields[0] == "cpu" and len(fields) > 8 else 0.0


def filesystem_of(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str:
    """The type of the filesystem `path` is on ("tmpfs", "ext4", ...), from the mount table (the
    longest mount point above it); "unknown" where the table is missing or lists none above it."""
    try:
        mounts = [line.split()[1:3] for line in mounts_file.read_text().splitlines() if len(line.split()) >= 3]
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    above = [(point, kind) for point, kind in mounts
             if resolved == point or resolved.startswith(point.rstrip("/") + "/")]
    return max(above, key=lambda mount: len(mount[0]))[1] if above else "unknown"
