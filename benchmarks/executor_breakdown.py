"""Where a run's time goes, per executor: the stages of the run's own process and the CPU of every
process below it, so that what an executor costs per run and per point can be read apart from the
points themselves.

    python benchmarks/executor_breakdown.py                                   # the 16-point sweep, serial, process, ray
    python benchmarks/executor_breakdown.py --executors process,ray --json breakdown.json

Each executor's run is ``archbench.run`` of ``--suite`` in a fresh interpreter (its imports counted),
which notes the moment (wall s since it was launched) and its own CPU s at each stage: imports done,
the executor made (``ray.init`` for ray), ``check`` (the process executor forks its workers, the ray
executor starts one resident worker per Ray worker), the memory check, ``meta.json``, each group
submitted and each finished, the tables consolidated, the executor closed (``ray.shutdown``). This
process samples /proc every 50 ms for the CPU s of each process below it, by kind: the run, its
workers (forked, or fresh interpreters), and Ray's own processes (GCS, raylet, dashboard and its
agent, the runtime-env agent, the autoscaler's monitor, the log monitor, Ray's worker processes).
A process's last 50 ms of CPU can be missed.

Per-run overhead: an executor's CPU s beyond the points' own (the serial run's CPU s in
``run_points``), and the stages before the first group is submitted and after the last result.
Per-point overhead: the run's CPU s in ``run_points`` (submitting, pickling, writing) per point.
CPU s hold on a busy machine; the wall s of the stages are inflated there by the others' load.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
MARK = "@@archbench-breakdown "


def drive(suite: str, executor: str, workers: int, t0: float) -> None:
    """In the fresh interpreter: the run, with a mark at each stage (JSON lines on stderr)."""
    def mark(what: str, **extra: object) -> None:
        print(MARK + json.dumps({"t": time.monotonic() - t0, "cpu": time.process_time(), "what": what, **extra}),
              file=sys.stderr, flush=True)

    mark("python started")
    import tempfile

    import archbench
    from archbench.execute import executors, footprint, session
    from archbench.execute.executors.process import ProcessExecutor
    from archbench.execute.executors.serial import SerialExecutor
    from archbench.results.store import ResultStore

    mark("imported")

    def wrap(owner: object, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def wrapped(*args, **kwargs):
            mark(f"{label} begins")
            try:
                return fn(*args, **kwargs)
            finally:
                mark(f"{label} ends")
        setattr(owner, name, wrapped)

    for owner, name, label in ((executors, "make", "make executor"), (footprint, "check_fits", "memory check"),
                               (session, "_begin", "meta.json"), (session, "run_points", "run_points"),
                               (ResultStore, "consolidate", "consolidate")):
        wrap(owner, name, label)
    classes: list[type] = [{"serial": SerialExecutor, "process": ProcessExecutor}.get(executor, SerialExecutor)]
    if executor == "ray":  # its local worker is a ProcessExecutor: marked once, as the ray executor's
        from archbench.execute.executors.ray import RayExecutor
        classes = [RayExecutor]
        close = RayExecutor.close

        def closing(self, close=close):
            mark("ray use", local_groups=self.local_groups, ray_started=self.ray_started)
            return close(self)
        RayExecutor.close = closing  # type: ignore[method-assign]
    for cls in classes:
        wrap(cls, "check", "check")
        wrap(cls, "close", "close")
        submit, finished = cls.submit, cls.next_finished

        def sub(self, group, settings, submit=submit):
            mark("submit", points=len(group))
            return submit(self, group, settings)

        def fin(self, finished=finished):
            results = finished(self)
            mark("result", points=len(results), seconds=sum(r.seconds for r in results))
            return results
        cls.submit, cls.next_finished = sub, fin  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        archbench.run(suite, out=tmp, executor=executor, workers=None if executor == "serial" else workers,
                      progress=False, say=lambda line: None)
    mark("run returned")


def _tree(root: int) -> list[tuple[int, list[str]]]:
    """The live processes below ``root`` (and root), each with its /proc stat fields after the name."""
    stats, kids = {}, collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(name)] = fields
            kids[int(fields[1])].append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out.append((pid, stats[pid]))
        todo += kids.get(pid, [])
    return out


def _kind(pid: int, root: int, root_cmd: str) -> str:
    try:
        cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
    except OSError:
        return "?"
    if not cmd:
        return "?"  # between fork and exec: looked at again at the next sample
    if pid == root:
        return "run"
    if "archbench.execute.executors.worker" in cmd:
        return "worker (fresh interpreter)"
    if cmd == root_cmd.strip():
        return "worker (forked)"
    if cmd.startswith("ray::"):  # Ray's agents and workers name themselves: ray::IDLE, ray::run_jobs_resident
        name = cmd[5:].split()[0]
        return f"ray: {name}" if name.endswith("Agent") else "ray: worker (ray::...)"
    args = cmd.split()
    if os.path.basename(args[0]) in ("gcs_server", "raylet"):
        return f"ray: {os.path.basename(args[0])}"
    script = next((os.path.basename(a) for a in args[1:] if a.endswith(".py")), None)
    return f"ray: {script}" if script and "/ray/" in cmd else f"other: {cmd[:60]}"


def measure(suite: str, executor: str, workers: int) -> dict:
    """One run in a fresh interpreter: its marks, and the CPU s of each process below it."""
    t0, sampler_cpu = time.monotonic(), time.process_time()
    proc = subprocess.Popen([sys.executable, __file__, "--drive", executor, "--suite", suite, "--workers", str(workers),
                             "--t0", repr(t0)], stderr=subprocess.PIPE, text=True)
    root_cmd, seen = None, {}  # pid -> [kind, cpu s, first seen, last seen]
    hz = os.sysconf("SC_CLK_TCK")
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    while proc.poll() is None:
        now = time.monotonic() - t0
        if root_cmd is None:
            try:
                root_cmd = open(f"/proc/{proc.pid}/cmdline").read().replace("\0", " ")
            except OSError:
                pass
        for pid, fields in _tree(proc.pid):
            cpu = (int(fields[11]) + int(fields[12])) / hz
            entry = seen.setdefault(pid, [None, 0.0, now, now])
            kind = _kind(pid, proc.pid, root_cmd or "")  # again each time: a child shows its parent's
            entry[0] = kind if kind != "?" or entry[0] is None else entry[0]  # command line until its exec
            entry[1], entry[3] = max(entry[1], cpu), now
        time.sleep(0.05)
    reader.join()
    marks = [json.loads(line[len(MARK):]) for line in lines if line.startswith(MARK)]
    if proc.returncode:
        sys.exit(f"{executor}: the run failed ({proc.returncode}):\n" + "".join(lines[-20:]))
    kinds: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    for kind, cpu, _, _ in seen.values():
        kinds[kind or "?"][0] += cpu
        kinds[kind or "?"][1] += 1
    return {"executor": executor, "wall_s": time.monotonic() - t0, "marks": marks,
            "cpu_by_kind": {k: {"cpu_s": v[0], "processes": v[1]} for k, v in kinds.items()},
            # this sampler's own CPU s, taken from the cores the run uses (about 5 % of one here)
            "sampler_cpu_s": time.process_time() - sampler_cpu}


def _at(marks: list[dict], what: str, last: bool = False) -> dict:
    found = [m for m in marks if m["what"] == what]
    return found[-1] if last else found[0]


def summary(run: dict, points_cpu: float | None) -> dict:
    """The stages (wall s, the run's CPU s) and the overheads of one run."""
    m = run["marks"]
    results = [x for x in m if x["what"] == "result"]
    first_submit, rp0, rp1 = _at(m, "submit"), _at(m, "run_points begins"), _at(m, "run_points ends")
    stages = {
        "python start + imports": (0.0, _at(m, "imported")),
        "make executor (ray.init)": (_at(m, "make executor begins")["t"], _at(m, "make executor ends")),
        "check (fork / warm workers)": (_at(m, "check begins")["t"], _at(m, "check ends")),
        "memory check": (_at(m, "memory check begins")["t"], _at(m, "memory check ends")),
        "meta.json": (_at(m, "meta.json begins")["t"], _at(m, "meta.json ends")),
        "to the first result": (first_submit["t"], results[0]),
        "  of which waiting for a worker": (first_submit["t"], {"t": results[0]["t"] - results[0]["seconds"]}),
        "run_points": (rp0["t"], rp1),
        "last two results apart (tail)": (results[-2]["t"] if len(results) > 1 else results[-1]["t"], results[-1]),
        "consolidate": (_at(m, "consolidate begins", last=True)["t"], _at(m, "consolidate ends", last=True)),
        "close (ray.shutdown)": (_at(m, "close begins")["t"], _at(m, "close ends")),
        "to the exit": (_at(m, "run returned")["t"], {"t": run["wall_s"], "cpu": None}),
    }
    out = {name: {"from_s": start, "wall_s": end["t"] - start} for name, (start, end) in stages.items()}
    cpu = {"python start + imports": _at(m, "imported")["cpu"]}
    for name, key in (("make executor (ray.init)", "make executor"), ("check (fork / warm workers)", "check"),
                      ("memory check", "memory check"), ("meta.json", "meta.json"), ("run_points", "run_points"),
                      ("close (ray.shutdown)", "close")):
        cpu[name] = _at(m, f"{key} ends")["cpu"] - _at(m, f"{key} begins")["cpu"]
    for name, value in cpu.items():
        out[name]["run_cpu_s"] = value
    by_kind = run["cpu_by_kind"]
    n = sum(r["points"] for r in results)
    run_cpu = by_kind["run"]["cpu_s"]
    return {"stages": out, "points": n, "points_wall_s": sum(r["seconds"] for r in results),
            "run_cpu_per_point_ms": 1e3 * (rp1["cpu"] - rp0["cpu"]) / max(n, 1),
            "prologue_wall_s": first_submit["t"], "prologue_run_cpu_s": first_submit["cpu"],
            "run_cpu_outside_run_points_s": run_cpu - (rp1["cpu"] - rp0["cpu"]),
            "cpu_total_s": sum(v["cpu_s"] for v in by_kind.values()),
            "cpu_workers_s": sum(v["cpu_s"] for k, v in by_kind.items() if k.startswith("worker")),
            "cpu_ray_s": sum(v["cpu_s"] for k, v in by_kind.items() if k.startswith("ray")),
            "serial_points_cpu_s": points_cpu,
            "ray_use": next(({k: x[k] for k in ("local_groups", "ray_started")} for x in m if x["what"] == "ray use"), None)}


def show(run: dict, s: dict) -> None:
    ref = f"; the points in a serial run: {s['serial_points_cpu_s']:.1f} CPU s" if s["serial_points_cpu_s"] else ""
    print(f"\n== {run['executor']}: wall {run['wall_s']:.1f} s; CPU s: {s['cpu_total_s']:.1f} in all, the run's process "
          f"{s['run_cpu_outside_run_points_s']:.2f} outside run_points and {s['run_cpu_per_point_ms']:.1f} ms per point in "
          f"it, workers {s['cpu_workers_s']:.1f}, Ray's processes {s['cpu_ray_s']:.1f}{ref}; {s['points']} points, "
          f"{s['points_wall_s']:.1f} s of their own wall")
    if s["ray_use"]:
        print(f"   groups on the local worker: {s['ray_use']['local_groups']}; Ray started: {s['ray_use']['ray_started']}")
    print(f"   {'stage':32} {'from s':>7} {'wall s':>7} {'run CPU s':>9}")
    for name, st in s["stages"].items():
        cpu = f"{st['run_cpu_s']:9.2f}" if "run_cpu_s" in st else f"{'':9}"
        print(f"   {name:32} {st['from_s']:7.2f} {st['wall_s']:7.2f} {cpu}")
    print(f"   {'CPU s by process':44} {'CPU s':>7} {'processes':>9}")
    for kind, v in sorted(run["cpu_by_kind"].items(), key=lambda kv: -kv[1]["cpu_s"]):
        print(f"   {kind:44} {v['cpu_s']:7.2f} {v['processes']:9d}")
    print(f"   {'this sampler (not the run: wall s are inflated by it)':44} {run['sampler_cpu_s']:7.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="benchmarks/executor_speed.yaml")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--executors", default="serial,process,ray", help="comma-separated; serial first gives the points' CPU")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--drive", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.drive:
        drive(args.suite, args.drive, args.workers, args.t0 if args.t0 is not None else time.monotonic())
        return 0
    runs: list[dict] = []
    points_cpu = None
    for name in args.executors.split(","):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        run = measure(args.suite, name, args.workers)
        if name == "serial":
            rp = run["marks"]
            points_cpu = _at(rp, "run_points ends")["cpu"] - _at(rp, "run_points begins")["cpu"]
        run["summary"] = summary(run, points_cpu)
        run["load_before"] = load
        show(run, run["summary"])
        print(f"   load before {load}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        runs.append(run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
