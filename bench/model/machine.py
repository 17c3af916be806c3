"""Shared by the peer scripts: how busy the (shared) machine is around a timing."""
import os
import subprocess
import sys
import time


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def top_header() -> str:
    """The first 15 lines of `top -bn1`."""
    try:
        out = subprocess.run(["top", "-bn1"], capture_output=True, text=True, timeout=10).stdout
        return "\n".join(out.splitlines()[:15])
    except Exception as e:  # noqa: BLE001
        return f"(top failed: {e})"


def busy_cores(seconds: float = 1.0) -> float:
    """Average number of busy cores over `seconds`, whole machine, from /proc/stat."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return round(((t1 - t0) - (i1 - i0)) / os.sysconf("SC_CLK_TCK") / seconds, 2)


def before_timing(name: str, wait_quiet_s: float = 0.0, threshold: float = 0.15) -> dict:
    """Wait (up to wait_quiet_s) until the machine is idle, log top's header, and return
    what was seen: {"busy_cores_before", "waited_s", "quiet"}."""
    t0 = time.time()
    busy = busy_cores(1.0)
    while busy > threshold and time.time() - t0 < wait_quiet_s:
        busy = busy_cores(2.0)
    waited = round(time.time() - t0, 1)
    quiet = busy <= threshold
    log(f"--- {name}: before timing, busy cores {busy} (waited {waited} s){'' if quiet else '  WARNING: machine busy, timings disturbed'}")
    log(top_header())
    return {"busy_cores_before": busy, "waited_s": waited, "quiet": quiet}


class CpuWatch:
    """CPU-seconds used by other processes during a timed block (machine total minus ours)."""

    def __enter__(self):
        self.stat0 = self._stat()
        self.own0 = os.times()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        stat1, own1 = self._stat(), os.times()
        hz = os.sysconf("SC_CLK_TCK")
        d = [b - a for a, b in zip(self.stat0, stat1)]
        machine = (sum(d) - d[3] - d[4]) / hz
        own = (own1.user - self.own0.user) + (own1.system - self.own0.system)
        self.others_cpu_s = round(max(0.0, machine - own), 2)
        self.own_cpu_s = round(own, 2)
        self.wall_s = wall
        return False

    @staticmethod
    def _stat():
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
