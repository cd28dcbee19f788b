"""The report's figures rendered by forked children: the same files, written by another process,
failures raised with the figure's name, and rendered here where forking is not safe."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from archbench.report import figure_writer, plots

# pytest-timeout's thread method (the project's default) runs a second thread, under which the writer
# (rightly) renders in this process: these tests time out by SIGALRM instead
pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform"),
              pytest.mark.timeout(120, method="signal")]


def _figure() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [1, 4, 9], "o-")
    ax.set_title("squares")
    fig.tight_layout()
    return fig


def _pid_render(out: Path, name: str):
    def render() -> None:
        (out / name).write_text(str(os.getpid()))
    return render


def test_a_figure_written_in_a_child_is_the_same_png_as_one_written_here(tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "child").mkdir()
    plots.write(_figure(), tmp_path / "here", "f")
    with figure_writer.open_writer(most=2) as writer:
        plots.write(_figure(), tmp_path / "child", "f")
        assert len(writer._children) == 1  # forked
    assert (tmp_path / "child" / "f.png").read_bytes() == (tmp_path / "here" / "f.png").read_bytes()
    assert (tmp_path / "child" / "f.svg").is_file()


def test_inside_the_block_each_figure_renders_in_another_process_and_all_are_done_on_leaving(tmp_path):
    with figure_writer.open_writer(most=2):
        for k in range(5):  # more than ``most``: the oldest is waited for
            figure_writer.submit(f"f{k}", _pid_render(tmp_path, f"f{k}"))
    pids = {int((tmp_path / f"f{k}").read_text()) for k in range(5)}
    assert os.getpid() not in pids and len(pids) == 5


def test_outside_a_block_and_with_a_second_thread_a_figure_renders_here(tmp_path):
    figure_writer.submit("alone", _pid_render(tmp_path, "alone"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with figure_writer.open_writer(most=2):
            figure_writer.submit("threaded", _pid_render(tmp_path, "threaded"))
    finally:
        stop.set()
        other.join()
    assert int((tmp_path / "alone").read_text()) == os.getpid()
    assert int((tmp_path / "threaded").read_text()) == os.getpid()


def test_a_child_that_fails_is_raised_with_the_figure_name_after_the_others_are_written(tmp_path):
    def broken() -> None:
        raise ValueError("no such colour 'blurple'")

    with pytest.raises(figure_writer.FigureWriteError) as raised:
        with figure_writer.open_writer(most=2):
            figure_writer.submit("broken", broken)
            figure_writer.submit("fine", _pid_render(tmp_path, "fine"))
    assert str(raised.value) == "figure 'broken' could not be written: ValueError: no such colour 'blurple'"
    assert "in broken" in raised.value.child_traceback
    assert (tmp_path / "fine").read_text().isdigit()


def test_an_error_while_drawing_kills_the_children_and_leaves_no_writer_open(tmp_path):
    started = tmp_path / "started"

    def slow() -> None:
        started.write_text("1")
        threading.Event().wait(60)

    with pytest.raises(KeyError):
        with figure_writer.open_writer(most=2) as writer:
            figure_writer.submit("slow", slow)
            children = [pid for pid, _, _ in writer._children]
            raise KeyError("drawing failed")
    assert figure_writer._open is None
    for pid in children:  # killed and reaped: no such child any more
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_block_inside_another_writes_its_own_figures_on_leaving_and_most_0_renders_here(tmp_path):
    with figure_writer.open_writer(most=0):
        with figure_writer.open_writer() as inner:  # as a report drawn inside the block: index.html reads them
            assert inner.most == 0
            figure_writer.submit("inner", _pid_render(tmp_path, "inner"))
        assert int((tmp_path / "inner").read_text()) == os.getpid()
    with figure_writer.open_writer(most=2) as outer:
        with figure_writer.open_writer():
            figure_writer.submit("forked", _pid_render(tmp_path, "forked"))
        assert (tmp_path / "forked").is_file() and not outer._children
    assert figure_writer._open is None



def test_with_one_child_at_a_time_a_failure_is_raised_before_the_next_figure_is_rendered(tmp_path):
    def broken() -> None:
        raise RuntimeError("the font cache is damaged")

    with pytest.raises(figure_writer.FigureWriteError, match="'broken' could not be written: RuntimeError: the font"):
        with figure_writer.open_writer(most=1) as writer:
            figure_writer.submit("broken", broken)
            figure_writer.submit("next", _pid_render(tmp_path, "next"))  # waits for "broken" first
    assert not (tmp_path / "next").exists() and not writer._children


def test_an_os_error_in_a_child_is_raised_as_itself(tmp_path):
    """A full disk in a child reaches the report's staged folder as the OSError it is (its one line)."""
    import errno

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f.png"))

    with pytest.raises(OSError) as raised:
        with figure_writer.open_writer(most=2):
            figure_writer.submit("f", full)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "f.png")


def test_ctrl_c_while_waiting_at_the_end_kills_every_child(tmp_path, monkeypatch):
    def slow() -> None:
        threading.Event().wait(60)

    reaped = figure_writer.FigureWriter._reap

    def interrupted(child):  # as if Ctrl-C came while the first child was waited for
        reaped_pid = child[0]
        os.kill(reaped_pid, 9)
        reaped(child)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with figure_writer.open_writer(most=2) as writer:
            figure_writer.submit("a", slow)
            figure_writer.submit("b", slow)
            children = [pid for pid, _, _ in writer._children]
            monkeypatch.setattr(figure_writer.FigureWriter, "_reap", staticmethod(interrupted))
    assert not writer._children
    for pid in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
