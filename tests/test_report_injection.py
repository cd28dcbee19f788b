"""A report cannot be turned against its reader (issue 28): text from a results folder (meta.json, the
table's names and errors, the suite) is shown, never markup; the page inlines only figures the report
drew in its own folder; and in headless Chromium the poisoned page holds no element it did not ship."""
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_history import make_history

from archbench.report import plots, write_report
from archbench.report.history_page import write_history
from archbench.report.page import html_page
from archbench.report.section import fenced, literal, table

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
PAYLOAD = "<img src=x onerror=\"document.body.setAttribute('data-pwned', '1')\">"
SCRIPT = "<script>document.body.setAttribute('data-pwned', '2')</script>"


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> tuple[Path, str]:
    """A PNG elsewhere on the disk, and its base64 (which must never appear in a page)."""
    path = tmp_path_factory.mktemp("elsewhere") / "secret.png"
    data = b"\x89PNG\r\n\x1a\n" + b"SECRET-BYTES-" * 20
    path.write_bytes(data)
    return path, base64.b64encode(data).decode()[:40]


def _poison(folder: Path, secret: Path) -> None:
    """meta.json, results.csv and the suite text of a copy of the fixture, each carrying markup."""
    meta = json.loads((folder / "meta.json").read_text())
    meta["environment"]["cpu"] = PAYLOAD + SCRIPT
    meta["environment"]["note"] = f'<a id="secret"></a>\n![secret]({secret.with_suffix("")}.png) [x](javascript:alert(1))'
    meta["flags"] = {"tf32": f"![p]({secret})"}
    meta["suite_text"] = "name: x\n```\n" + SCRIPT + "\n```\n"
    (folder / "meta.json").write_text(json.dumps(meta))
    frame = pd.read_csv(folder / "results.csv")
    frame.loc[frame.arch == "lstm", "arch"] = "lstm" + PAYLOAD
    frame.loc[frame.experiment == "learn", "experiment"] = "learn" + SCRIPT
    frame["error"] = frame.error.astype(object)
    frame.loc[frame.index[-1], ["status", "error"]] = ["error", SCRIPT + f"![s]({secret})"]
    frame.loc[frame.index[-1], "value"] = float("nan")
    frame.to_csv(folder / "results.csv", index=False)


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory, secret) -> Path:
    folder = tmp_path_factory.mktemp("poisoned") / "fixture" / "20261129-000000"
    shutil.copytree(FIXTURE, folder)
    _poison(folder, secret[0])
    with pytest.MonkeyPatch.context() as mp:  # the figures drawn, not rendered: what is checked is the text
        mp.setattr(plots, "_write", lambda fig, out, stem, formats, dpi: [
            (out / f"{stem}.{e}").write_bytes(b"\x89PNG") for e in formats])
        return write_report(folder, out=folder.parent.parent / "report")


def _injected(page: str) -> list[str]:
    """The elements of ``page`` that the report did not ship: any script but its one, any handler
    attribute, any image not inlined as a PNG it drew, any javascript: link."""
    found = [m for m in re.findall(r"<script\b[^>]*>", page)][1:]
    found += re.findall(r"<[a-z][^>]*\son[a-z]+\s*=", page, re.IGNORECASE)
    found += [m for m in re.findall(r"<img\b[^>]*>", page) if 'src="data:image/png;base64,' not in m]
    found += re.findall(r"href=\"javascript:", page, re.IGNORECASE)
    return found


def test_literal_shows_text_and_means_nothing():
    assert literal(PAYLOAD) == "&lt;img src=x onerror=\"document.body.setAttribute('data-pwned', '1')\"&gt;"
    assert literal("![s](/etc/a.png) | `x`") == "!\\[s\\](/etc/a.png) \\| \\`x\\`"
    assert literal("a\nb\tc") == "a b c"
    assert fenced("a\n````\nb") == ["`````", "a\n````\nb", "`````"]
    cell = table(pd.DataFrame({"arch": [PAYLOAD]}))
    assert "<img" not in cell and "&lt;img" in cell


def test_the_page_renders_raw_html_as_text_and_inlines_only_its_own_figures(tmp_path, secret):
    (tmp_path / "mine.png").write_bytes(b"\x89PNG-mine")
    (tmp_path / "linked.png").symlink_to(secret[0])
    text = "\n".join([PAYLOAD, "", SCRIPT, "", f"![s]({secret[0]})", "", '<a id="linked"></a>', "![l](linked.png)",
                      "", '<a id="mine"></a>', "![m](mine.png)", "", "[x](javascript:alert(1))"])
    page = html_page(text, tmp_path, "t", figures=["mine", "linked"])
    assert _injected(page) == []
    assert secret[1] not in page and "&lt;img src=x" in page and "&lt;script&gt;" in page
    assert page.count("data:image/png;base64,") == 1 and base64.b64encode(b"\x89PNG-mine").decode() in page


def test_a_poisoned_report_holds_no_markup_it_did_not_write(poisoned, secret):
    md, page = (poisoned / "report.md").read_text(), (poisoned / "index.html").read_text()
    assert _injected(page) == [], _injected(page)
    assert secret[1] not in page
    for text in (md.split("## Suite")[0], page):  # the suite itself is shown in a code block, as written
        assert "<img" not in text.replace('<img alt="', "") and "<script>document" not in text
    assert "&lt;img src=x onerror" in md and "lstm&lt;img" in page  # shown, as text
    assert "```\n<script>" in md  # the suite's own fence cannot close the report's (four backticks)


def test_a_poisoned_history_page_holds_no_markup_it_did_not_write(tmp_path, secret):
    root = tmp_path / "results"
    make_history(root, runs=3)
    first = sorted((root / "fixture").iterdir())[0]
    meta = json.loads((first / "meta.json").read_text())
    meta["environment"]["git"]["commit"] = PAYLOAD + f"![s]({secret[0]})"
    (first / "meta.json").write_text(json.dumps(meta))
    damaged = root / "fixture" / "20261101-000000"
    shutil.copytree(FIXTURE, damaged)
    (damaged / "results.csv").write_text((FIXTURE / "results.csv").read_text().replace(",False,ok,", ",<script>alert(1)</script>,ok,", 1))
    with pytest.warns(UserWarning, match="skipped"):
        index = write_history([root], tmp_path / "page")
    page, md = index.read_text(), (index.parent / "history.md").read_text()
    assert _injected(page) == [] and secret[1] not in page
    assert "Skipped as damaged" in md, md
    assert "&lt;script&gt;" in page, page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_in_chromium_the_poisoned_report_runs_nothing_it_did_not_ship(poisoned, tmp_path):
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", "--dump-dom", (poisoned / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert "<body" in dom and "archbench report" in dom, done.stderr[-2000:]
    assert re.search(r"<body[^>]*data-pwned", dom) is None   # no injected handler or script ran
    assert _injected(dom) == [], _injected(dom)              # and no injected element exists
    assert "lstm&lt;img src=x onerror" in dom                # the names are there, as text


def test_a_dollar_in_a_name_is_shown_not_parsed_as_mathtext():
    import io

    import matplotlib.pyplot as plt

    for literal_first in (False, True):
        fig, ax = plt.subplots()
        ax.plot([1, 10], [1, 100], label=r"lstm$\undefinedcommand$")  # a name from a results folder
        ax.set_yscale("log")
        ax.legend()
        ax.set_title(r"$\frac{$")
        if literal_first:
            plots.literal_labels(fig)
            fig.savefig(io.BytesIO(), format="png")
            assert any("$" in t.get_text() for t in ax.get_yticklabels())  # the ticks' own mathtext kept
        else:
            with pytest.raises(ValueError):
                fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
