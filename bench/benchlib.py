"""Helpers shared by the benchmarks (bench/run, bench/discovery)."""

import os
import signal
import statistics
import subprocess
import time
from pathlib import Path


def run(argv, timeout, env=None, cwd=None, out=None, input_bytes=None):
    """Run a command in its own process group; kill the group on timeout.

    Returns dict(rc, seconds, stdout, stderr, timed_out). With `out`, stdout and stderr are
    also written to out.stdout / out.stderr."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(a) for a in argv],
        stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(input=input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                stdout, stderr = proc.communicate(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            stdout, stderr = b"", b""
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    seconds = time.monotonic() - started
    res = {
        "rc": proc.returncode,
        "seconds": seconds,
        "stdout": stdout.decode(errors="replace"),
        "stderr": stderr.decode(errors="replace"),
        "timed_out": timed_out,
    }
    if out:
        Path(f"{out}.stdout").write_text(res["stdout"])
        Path(f"{out}.stderr").write_text(res["stderr"])
    return res


def tail(text, n=12):
    return "\n".join(text.strip().splitlines()[-n:])


def percentile(values, q):
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def distribution(values, digits=1):
    """runs, median, p95, max (None when there is no value)."""
    if not values:
        return None
    return {"n": len(values), "median": round(statistics.median(values), digits),
            "p95": round(percentile(values, 95), digits), "max": round(max(values), digits)}
