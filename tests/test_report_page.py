"""The report and the history page as a reader sees them: markdown rendered, a verdict linked to its
figures, no figure text cut off, and, in headless Chromium at two window widths, every image decoded
and nothing wider than the window."""
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.text import Text
from test_history import make_history

from archbench.report import figure_writer, plots, write_report
from archbench.report.history_page import write_history

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
WIDTHS = (1280, 540)  # a desktop window and a narrow one (headless Chromium's windows are at least 500 wide)


def clipped(fig) -> list[str]:
    """The texts of a drawn figure that reach past its edges (in display pixels, one of slack)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    hidden = set()  # labels of ticks outside the axes' view: matplotlib keeps them but does not draw them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(lo), abs(hi))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - slack <= tick.get_loc() <= hi + slack:
                    hidden |= {id(tick.label1), id(tick.label2)}
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden:
            e = t.get_window_extent(renderer)
            if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
                out.append(t.get_text())
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    seen: dict[str, list[str]] = {}
    write = plots._write

    def checked(fig, out, stem, formats, dpi):  # every figure of the report, as it is saved
        seen[stem] = clipped(fig)
        write(fig, out, stem, formats, dpi)

    with pytest.MonkeyPatch.context() as mp, figure_writer.open_writer(most=0):  # rendered here: seen is this process's
        mp.setattr(plots, "_write", checked)
        folder = write_report(FIXTURE, out=tmp_path_factory.mktemp("report") / "r")
    return folder, seen


def test_no_text_of_any_figure_is_cut_off(report):
    _, seen = report
    assert len(seen) >= 10 and {stem: texts for stem, texts in seen.items() if texts} == {}


def test_a_title_too_long_for_its_figure_is_wrapped_to_fit():
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.bar([0, 1], [0.5, 0.9])
    ax.set_title("accuracy_architectures_long_name: accuracy, 95 % interval over seeds (black: blind guess)")
    fig.tight_layout()
    assert clipped(fig)                       # as the report drew it before: cut off at both ends
    plots.fit_titles(fig)
    assert clipped(fig) == [] and "\n" in ax.get_title()
    plt.close(fig)


def test_the_html_renders_the_markdown_and_the_verdict_links_to_figures(report):
    folder, _ = report
    md, page = (folder / "report.md").read_text(), (folder / "index.html").read_text()
    assert "**learn**" in md and "**" not in page and "<strong>learn</strong>" in page
    verdict = md[md.index("## Verdict"): md.index("## Summary")]
    links = re.findall(r"\]\(#([a-z_0-9]+)\)", verdict)
    assert len(links) == 2 and all(f'<figure id="{stem}">' in page for stem in links)
    results = pd.read_csv(FIXTURE / "results.csv").query("metric == 'latency' and status == 'ok'")
    at = results[results.seq_len == results.seq_len.max()].groupby("arch").value.median().sort_values()
    assert f"[{at.index[0]}: " in verdict and f"{at.iloc[-1] / at.iloc[0]:.1f}x less than {at.index[-1]}" in verdict
    assert "Fastest forward pass at batch" in verdict and "Which architectures learned" in verdict
    assert '<div class="figures">' in page and '<td style="text-align: right;">' in page
    for section in ("## Speed, memory and scaling", "## Parallelism", "## Receptive field", "## Accuracy",
                    "## Other measurements", "**flops**"):
        assert section in md                                        # flops: no figure, so a table


@pytest.fixture(scope="module")
def history_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("history") / "results"
    make_history(root)
    return write_history([root], root.parent / "page")


def _look(page: Path, width: int, out: Path) -> tuple[Path, str]:
    """A screenshot of ``page`` in a window ``width`` wide, and what the page measured of itself."""
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             " const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;"
             " const wide = [...document.querySelectorAll('body *')].filter(e =>"
             " e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table, pre')).length;"
             " document.title = `width ${window.innerWidth} scroll ${document.documentElement.scrollWidth}"
             " images ${imgs.length} broken ${bad} wide ${wide}`; });</script></body>")
    copy = out / f"{page.parent.name}-{width}.html"
    copy.write_text(page.read_text().replace("</body>", probe))
    shot = out / f"{page.parent.name}-{width}.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={out / 'profile'}", f"--window-size={width},1600", "--virtual-time-budget=5000",
         f"--screenshot={shot}", "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120)
    return shot, done.stdout[done.stdout.find("<title>") + 7: done.stdout.find("</title>")]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", WIDTHS)
def test_in_chromium_every_image_decodes_and_nothing_overflows(report, history_page, width, tmp_path):
    for page in (report[0] / "index.html", history_page):
        images = page.read_text().count("<img")
        shot, seen = _look(page, width, tmp_path)
        assert seen == f"width {width} scroll {width} images {images} broken 0 wide 0", (page, seen)
        pixels = matplotlib.image.imread(shot)              # the screenshot itself decodes, at the window's size
        assert pixels.shape[:2] == (1600, width) and pixels.std() > 0.05


def test_the_verdict_names_each_configuration_and_judges_it_against_its_own_guess(tmp_path):
    import pandas as pd

    from archbench.report import verdict
    from archbench.report.section import ReportData

    df = pd.DataFrame({"metric": ["accuracy"], "status": ["ok"], "arch": ["x"], "seq_len": [32], "pass": ["eval"],
                       "batch": [1], "experiment": ["m"]})
    data = ReportData(df, {}, [], None, tmp_path, tmp_path, {})
    row = {"experiment": "m", "arch": "tcn", "task": "mqar", "seq_len": 32, "best_lr": True, "n_seeds": 2,
           "converged": False, "converged_seeds": 0, "reached_threshold": 0}
    data.__dict__["accuracy"] = pd.DataFrame([  # a guess of 0.50 at 2 pairs, 0.06 at 8
        {**row, "param.pairs": 2, "accuracy": 0.46, "accuracy_ci_low": 0.40, "baseline_accuracy": 0.50},
        {**row, "param.pairs": 8, "accuracy": 0.17, "accuracy_ci_low": 0.15, "baseline_accuracy": 0.06}])
    (question, answer), = verdict.rows(data)
    assert "the blind guess scores 0.06 to 0.50 by configuration" in question
    assert "tcn (pairs=2) no better than the guess: 0.46" in answer
    assert "tcn (pairs=8) beat the guess, short of the threshold: 0.17" in answer
