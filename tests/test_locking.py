"""A results folder being written: locked against a second writer, never written through a symlink,
and a full disk one line with nothing half-written left behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import archbench
from archbench.cli import cli
from archbench.errors import BadInput
from archbench.results import store as store_module
from archbench.results.lock import NAME, FolderLock
from archbench.results.store import NoSpace, ResultStore

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
SUITE = """
name: locked
threads: 1
experiments:
  - name: counts
    architectures: [lstm, tcn]
    metrics: [flops]
    sweep: {seq_len: [8, 16], d_model: 8}
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant(folder: Path, pid: int, host: str | None = None, command: str = "archbench run s.yaml") -> None:
    (folder / NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "command": command}))


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    with FolderLock(tmp_path, command="archbench run first.yaml"):
        with pytest.raises(BadInput, match=rf"being written by pid {os.getpid()} on .*archbench run first.yaml"):
            FolderLock(tmp_path).acquire()
    assert not (tmp_path / NAME).exists()  # released
    with FolderLock(tmp_path):  # and free again
        pass


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    _plant(tmp_path, _dead_pid())
    with FolderLock(tmp_path) as lock:
        assert json.loads((tmp_path / NAME).read_text())["pid"] == os.getpid() and lock.held


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    _plant(tmp_path, 1, host="elsewhere.example")
    with pytest.raises(BadInput, match="pid 1 on elsewhere.example"):
        FolderLock(tmp_path).acquire()


def test_an_unreadable_lock_names_its_file(tmp_path):
    (tmp_path / NAME).write_bytes(b"\0garbage")
    with pytest.raises(BadInput, match="cannot be read; if no run writes there any more, remove"):
        FolderLock(tmp_path).acquire()


def test_a_resume_of_a_folder_being_written_is_one_line(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _plant(folder, holder.pid, command="archbench run suite.yaml --resume run")
        before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
        result = CliRunner().invoke(cli, ["run", str(FIXTURE / "suite.yaml"), "--resume", str(folder),
                                          "--no-progress", "--no-report"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "--resume run" in lines[0]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_a_run_holds_its_folder_and_lets_go(suite_file, tmp_path, monkeypatch):
    seen = []
    real = store_module._append_lines

    def append(path, items):
        seen.append(json.loads((path.parent / NAME).read_text())["pid"])
        real(path, items)

    monkeypatch.setattr(store_module, "_append_lines", append)
    outcome = archbench.run(suite_file, out=tmp_path / "out", progress=False, say=lambda line: None)
    assert seen and set(seen) == {os.getpid()}
    assert not (outcome.folder / NAME).exists()


def test_records_are_not_written_through_a_planted_symlink(tmp_path):
    store = ResultStore.create(tmp_path / "out", "s")
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    store.records_path.symlink_to(outside)
    with pytest.raises(BadInput, match="symlink"):
        store.append({"point": {"id": "p"}, "status": "ok", "rows": []})
    assert outside.read_text() == ""


def test_a_resume_refuses_a_folder_with_a_planted_symlink(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    (folder / "records.jsonl").unlink()
    (folder / "records.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(BadInput, match="records.jsonl is a symlink"):
        ResultStore.open(folder)


def test_a_whole_file_replaces_a_symlink_instead_of_following_it(tmp_path):
    store = ResultStore.create(tmp_path / "out", "s")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (store.folder / "meta.json").symlink_to(outside)
    store.write_meta({"suite": "s"})
    assert outside.read_text() == "{}" and not (store.folder / "meta.json").is_symlink()


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    store = ResultStore.create(tmp_path / "out", "s")
    monkeypatch.setattr(store_module.os, "fsync", _no_space)
    with pytest.raises(NoSpace, match="no space left on device writing .*meta.json"):
        store.write_meta({"suite": "s"})
    assert list(store.folder.iterdir()) == []


def test_a_full_disk_during_a_run_is_one_line_naming_the_resume(suite_file, tmp_path, monkeypatch):
    real, records = os.fsync, []

    def fsync(fd):  # the disk fills up on the second point's record line
        if os.readlink(f"/proc/self/fd/{fd}").endswith("records.jsonl"):
            records.append(fd)
            if len(records) == 2:
                _no_space()
        real(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    result = CliRunner().invoke(cli, ["run", str(suite_file), "--out", str(tmp_path / "out"), "--no-progress",
                                      "--no-report"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "no space left on device writing" in errors[0] and "the finished points are kept" in errors[0]
    assert f"archbench run {suite_file} --resume " in errors[0]
    folder = next((tmp_path / "out" / "locked").iterdir())
    assert not list(folder.glob("*.tmp")) and not (folder / NAME).exists()
    assert archbench.load_results(folder).point_id.nunique() >= 1  # the finished points are kept
