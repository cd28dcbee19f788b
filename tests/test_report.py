"""Reports: drawn from a results folder alone (torch blocked), partial runs included, self-contained HTML."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from archbench.cli import cli

SUITE = """
name: rep
threads: 1
timing: {min_samples: 3, min_time: 0.0, max_time: 0.02, warmup: 0.0}
experiments:
  - name: lat
    architectures: [lstm, {kind: tcn, levels: 2}, {kind: transformer, heads: 2, layers: 1}]
    metrics: [latency, peak_memory]
    passes: [forward]
    sweep: {seq_len: [8, 16, 32], batch: 2, d_model: 16}
  - name: rf
    architectures: [lstm, {kind: tcn, levels: 2, d_model: 16}]
    metrics: [receptive_field]
    sweep: {seq_len: 40, batch: 1}
  - name: cover
    architectures: [{kind: tcn, label: cnn, dilation_base: 1}, {kind: tcn, label: dilated}]
    metrics: [layers_to_cover]
    sweep: {seq_len: [16, 64], batch: 1, d_model: 16}
"""
ONE_ARCH = """
name: one
threads: 1
timing: {min_samples: 3, min_time: 0.0, max_time: 0.02, warmup: 0.0}
experiments:
  - name: lat
    architectures: [tcn]
    metrics: [latency]
    sweep: {seq_len: [8, 16], batch: 1, d_model: 8}
"""
PNG = b"\x89PNG\r\n\x1a\n"


def referenced_images_are_valid(report_dir: Path) -> int:
    """Every figure report.md and index.html name exists and is a readable image; returns the count."""
    import re

    import matplotlib.image

    md = (report_dir / "report.md").read_text()
    names = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    for name in names:
        path = report_dir / name
        assert path.read_bytes()[:8] == PNG, name
        assert matplotlib.image.imread(path).shape[0] > 100, name
        assert path.with_suffix(".svg").read_text().lstrip().startswith("<?xml"), name
    page = (report_dir / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(names)
    return len(names)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    (root / "s.yaml").write_text(SUITE)
    with pytest.MonkeyPatch.context() as mp:  # reports go beside the results root where that is in the working directory
        mp.chdir(root)
        result = CliRunner().invoke(cli, ["run", str(root / "s.yaml"), "--out", str(root / "results"),
                                          "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = Path(next(x for x in result.output.splitlines() if x.startswith("results: ")).removeprefix("results: "))
    report = Path(next(x for x in result.output.splitlines() if x.startswith("report: ")).removeprefix("report: "))
    return folder, report


def test_run_ends_by_writing_the_report_beside_the_results(results):
    folder, report = results
    assert report == (folder.parents[2] / "reports" / "rep" / folder.name / "index.html").resolve()
    stems = {p.stem for p in report.parent.glob("*.png")}
    assert {"scaling_latency_forward", "scaling_peak_memory_forward", "rf_heatmaps", "rf_decay", "rf_sizes",
            "rf_layers_to_cover", "bars_mfu"} <= stems
    assert {p.stem for p in report.parent.glob("*.svg")} == stems
    assert referenced_images_are_valid(report.parent) == len(stems)


def test_a_single_architecture_with_one_metric_family(tmp_path):
    """Run from elsewhere (the working directory is not above --out): the report goes in the run folder."""
    (tmp_path / "one.yaml").write_text(ONE_ARCH)
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "one.yaml"), "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = Path(next(x for x in result.output.splitlines() if x.startswith("report: ")).removeprefix("report: "))
    # latency makes throughput, achieved_flops and mfu: two scaling plots and two bar charts, and nothing else
    assert {p.stem for p in report.parent.glob("*.png")} == {"scaling_latency_forward", "scaling_throughput_forward",
                                                             "bars_mfu", "bars_achieved_flops"}
    assert referenced_images_are_valid(report.parent) == 4
    assert "Receptive field" not in (report.parent / "report.md").read_text()
    assert report.parent.name == "report" and (report.parent.parent / "meta.json").is_file()


def test_the_report_is_drawn_from_files_alone_without_torch(results, tmp_path):
    folder, _ = results
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
            "from archbench.report import write_report\n"
            f"print(write_report({str(folder)!r}, out={str(tmp_path / 'again')!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "again" / "report.md").read_text()
    assert md.startswith("# archbench report: rep")
    # one thread there: its figures were rendered by forked children (figure_writer), here in this
    # process (pytest-timeout's thread): the same images
    report = results[1].parent
    assert referenced_images_are_valid(tmp_path / "again") == len(list(report.glob("*.png")))
    for png in report.glob("*.png"):
        assert (tmp_path / "again" / png.name).read_bytes() == png.read_bytes(), png.name
    assert "forward latency grows with sequence length" in md and "n^" in md
    assert "## Environment" in md and "## Suite" in md and "name: rep" in md


def test_index_html_opens_from_disk(results):
    _, report = results
    page = report.read_text()
    figures = len(list(report.parent.glob("*.png")))  # every figure drawn, each inlined once
    assert figures >= 7 and page.count("<img") == page.count("data:image/png;base64,") == figures
    assert "http://" not in page and "https://" not in page and "src=\"" not in page.replace('src="data:', "")


def test_a_partial_run_reports_what_finished_and_lists_the_rest(results, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, _ = results
    partial = tmp_path / "results" / "rep" / "cut"
    partial.mkdir(parents=True)
    lines = (folder / "records.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines[:5]]
    records[-1]["status"] = "oom"
    for row in records[-1]["rows"]:
        row.update(status="oom", value=None, error="OutOfMemoryError: CUDA out of memory")
    (partial / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))  # no csv, no meta
    result = CliRunner().invoke(cli, ["report", str(partial)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "reports" / "rep" / "cut" / "report.md").read_text()
    assert "of 1 point did not finish ok" in md and " oom" in md
    referenced_images_are_valid(tmp_path / "reports" / "rep" / "cut")
    assert "OutOfMemoryError: CUDA out of memory" in md
    assert "not recorded (partial run)" in md


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if __import__("shutil").which(c)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_index_html_renders_in_headless_chromium_with_every_image(results, tmp_path):
    _, report = results
    # A copy of the page that, once loaded, writes into its title how many images decoded.
    check = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             " const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;"
             " document.title = `images ${imgs.length} broken ${bad}`; });</script></body>")
    page = tmp_path / "check.html"
    page.write_text(report.read_text().replace("</body>", check))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    title = done.stdout[done.stdout.find("<title>") + 7: done.stdout.find("</title>")]
    count = len(list(report.parent.glob("*.png")))
    assert title == f"images {count} broken 0", (title, done.stderr[-500:])


def test_log_ticks_are_plain_text_and_the_same_labels():
    import matplotlib.pyplot as plt

    from archbench.report.labels import plain, plain_log_ticks

    assert plain(r"$\mathdefault{2\times10^{-3}}$") == "2×10⁻³" and plain(r"$\mathdefault{10^{6}}$") == "10⁶"
    assert plain(r"$\mathdefault{10^{\alpha}}$") == r"$\mathdefault{10^{\alpha}}$" and plain("$5") == "$5"
    fig, ax = plt.subplots()
    ax.plot([64, 512], [1e-3, 3e-3])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    before = [(t.get_text(), t.get_position()) for a in (ax.xaxis, ax.yaxis) for t in a.get_ticklabels(which="both")]
    plain_log_ticks(fig)
    after = [(t.get_text(), t.get_position()) for a in (ax.xaxis, ax.yaxis) for t in a.get_ticklabels(which="both")]
    plt.close(fig)
    assert [(plain(text), pos) for text, pos in before] == after and "2⁶" in [text for text, _ in after]
    assert not any("$" in text for text, _ in after)
