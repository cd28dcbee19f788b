"""A run stopped early leaves no process behind: SIGTERM, a double Ctrl-C (SIGINT twice) or a point
past its time limit, with each executor. The processes below the run (its workers, Ray's
processes, the Callgrind process of a serial run) are read from /proc while a point is in flight,
and none may be alive once the run has exited (a grandchild notices its parent is gone within a
second or so; the wait here is generous, for a loaded machine).

Each test runs ``archbench run`` as a process of its own: a signal must reach the run, not pytest.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc"),
              pytest.mark.heavy(65)]  # s of the run on one core: started first (conftest.py)

TESTS = Path(__file__).parent
WAIT = 240.0  # s for a run to get a point in flight on a loaded machine
GONE = 30.0   # s for what it started to be gone after it exited

# a quick point, then one that trains for ever: in flight when the signal comes
SUITE = """
name: orphans
device: cpu
threads: 1
experiments:
  - name: quick
    architectures: [{kind: tcn, levels: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops]
    sweep: {seq_len: 8, batch: 1, d_model: 8}
  - name: long
    architectures: [{kind: tcn, levels: 1}]
    task: {kind: reverse, vocab_size: 8}
    metrics: [accuracy]
    training: {steps: 1000000, eval_every: 1000000}
    sweep: {seq_len: 8, batch: 2, d_model: 8}
"""
# counted last: a serial run starts its Callgrind process at once (callgrind.launch_for)
COUNTED = """
  - name: counted
    architectures: [{kind: tcn, levels: 1}]
    metrics: [instructions]
    sweep: {seq_len: 8, batch: 1, d_model: 8}
"""
# the plugin's Hangs blocks the in-process watchdog: only the worker's kill stops it
HANGS = """
name: hangs
device: cpu
threads: 1
timeout: 2.0
plugins: [plugins.hangs]
experiments:
  - name: e
    architectures: [orphan_hangs]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops]
    sweep: {seq_len: 8, batch: 1, d_model: 8}
"""


def _stat(pid: int) -> list[str] | None:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _descendants(pid: int) -> set[tuple[int, str]]:
    """The live processes below ``pid``, each as (pid, start time): a pid the kernel reuses later is
    another process."""
    parents, starts = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) is not None:
            parents[int(name)], starts[int(name)] = int(fields[1]), fields[19]
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {(p, starts[p]) for p in found}


def _alive(process: tuple[int, str]) -> bool:
    fields = _stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] != "Z"  # a zombie is dead


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _start(tmp_path: Path, text: str, *options: str) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-m", "archbench", "run", str(path), "--out", str(out), "--no-progress", "--no-report",
            *options]
    if "plugins:" in text:
        args.append("--allow-plugins")
    # SIGINT as at a terminal: a shell that starts the test run in the background (nohup, `cmd &`) hands
    # its children SIGINT ignored, and Python then leaves it so (test_executors does the same)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)), out


def _wait_until(proc: subprocess.Popen, ready, seen: set) -> None:
    """Poll until ``ready()``, adding the run's descendants to ``seen`` as they come."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        seen |= _descendants(proc.pid)
        if ready():
            return
        time.sleep(0.2)
    pytest.fail(f"not ready in {WAIT:g} s")


def _finished(out: Path, n: int):
    def ready() -> bool:
        records = next(out.glob("*/*/records.jsonl"), None)
        return records is not None and records.read_text().count("\n") >= n
    return ready


def _none_left(seen: set) -> None:
    deadline = time.monotonic() + GONE
    while (left := [p for p in seen if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, "outlived the run: " + "; ".join(f"{pid} {_cmdline(pid)[:120]}" for pid, _ in left)


def _options(executor: str) -> tuple[str, ...]:
    """Ray with ``--address local``: its cluster started at once, so that Ray's own processes are
    among those that must be gone (without it these small suites run on the local worker: local_first)."""
    return (("--executor", executor) + (("--workers", "1") if executor != "serial" else ())
            + (("--address", "local") if executor == "ray" else ()))


def _skip_without(executor: str) -> None:
    if executor == "ray":
        pytest.importorskip("ray")


def _stop(proc: subprocess.Popen, how: str) -> tuple[str, str]:
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:  # Ctrl-C twice: the first waits for the point in flight, the second stops at once
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=WAIT)


# every executor and signal but SIGTERM to the process and ray executors, which other tests check
# already: tests/test_session.py::test_sigterm_keeps_what_finished_releases_the_lock_and_leaves_no_process
# (the same suite and executor, one worker, exit 143, no process below the run left, and more) and
# tests/test_executors_ray_local.py::test_sigterm_after_ray_started_late_leaves_no_process (Ray's
# processes and a local worker, exit 143, none left)
SIGNALLED = [(executor, how, code) for executor in ("serial", "process", "ray")
             for how, code in (("sigterm", 143), ("sigint", 130)) if executor == "serial" or how == "sigint"]


@pytest.mark.parametrize("executor, how, code", SIGNALLED)
def test_a_signalled_run_leaves_no_process(executor, how, code, tmp_path):
    """The run exits with the signal's code and every process below it is gone: the workers, Ray's
    processes, and with serial the Callgrind process it launched for its counted points."""
    _skip_without(executor)
    from archbench.instruments import callgrind

    counted = executor == "serial" and callgrind.unavailable() is None
    proc, out = _start(tmp_path, SUITE + (COUNTED if counted else ""), *_options(executor))
    seen: set = set()
    try:
        _wait_until(proc, _finished(out, 1), seen)
        if counted:  # launched at the start of the run: wait until it is seen
            _wait_until(proc, lambda: any("archbench.execute.callgrind" in _cmdline(p) for p, _ in seen), seen)
        if executor != "serial":
            assert seen, f"the {executor} executor started no process"
        if executor == "ray":  # Ray's own processes among them (a cluster of the run's own: --address local)
            assert any("raylet" in _cmdline(p) for p, _ in seen), "no raylet below the run"
        _, stderr = _stop(proc, how)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    _none_left(seen)


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_a_worker_killed_past_the_time_limit_leaves_no_process(executor, tmp_path):
    """A point that blocks the watchdog is killed with its worker process: the run ends ``timeout``,
    and neither that worker nor anything else of the run is left."""
    _skip_without(executor)
    proc, out = _start(tmp_path, HANGS, *_options(executor))
    seen: set = set()
    try:
        _wait_until(proc, lambda: proc.poll() is not None or _finished(out, 1)(), seen)
        stdout, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "(1 timeout)" in stdout, stdout + stderr
    _none_left(seen)
