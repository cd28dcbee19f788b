"""The Callgrind process itself: ``python -m archbench.execute.callgrind_child DIR`` under ``valgrind
--tool=callgrind``, started by ``archbench.execute.callgrind.Counter``.

It imports torch and the built-in metrics once (about 25 s of CPU under Valgrind), switches
instrumentation on where it cannot switch it per count, touches ``DIR/ready``, then answers each
request named on its stdin (a pickled ``callgrind.Request`` in DIR) with a pickle of the group's
``PointResult`` list beside it (``reply-K.pkl``), by ``execute.group.run_group``, until stdin closes.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from archbench.execute.callgrind import CallgrindError, Request


def _instrument_on() -> None:
    """Switch Callgrind's instrumentation on in this process (it started off, to import faster)."""
    if shutil.which("callgrind_control") is None:
        return  # started with --instr-atstart=yes
    proc = subprocess.Popen(["callgrind_control", "-i", "on", str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while proc.poll() is None:  # Callgrind reads the command only while this process runs code: no sleep
        pass
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode != 0 or "OK" not in out:
        raise CallgrindError(f"callgrind_control -i on failed: {out.strip()[-200:]}")


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:  # a killed run cannot close stdin in time: end with it
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="archbench-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """Import, switch instrumentation on, then run each requested group until stdin closes."""
    folder = Path(argv[0])
    _exit_with_parent()
    from archbench import registry
    from archbench.execute.group import Settings, run_group
    from archbench.instruments import callgrind

    registry.metrics.names()  # torch and the built-in metrics imported before instrumentation is on
    if not callgrind.switches_instrumentation():  # no client requests here: on for good, from now on
        _instrument_on()
    (folder / "ready").touch()
    for line in sys.stdin:
        request: Request = pickle.loads((folder / line.strip()).read_bytes())
        for plugin in request.plugins:
            plugin.load()
        results = run_group(list(request.points), Settings(rule=request.rule))
        reply = folder / line.strip().replace("request", "reply")
        tmp = reply.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(results))
        os.replace(tmp, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
