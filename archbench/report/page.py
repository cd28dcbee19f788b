"""A report's markdown as one self-contained HTML page: it opens from disk, with no server and no network.

    page = html_page(markdown_text, folder, "ci", figures)   # the figures drawn, inlined from folder/<stem>.png

Python-Markdown renders what the markdown means (tables, emphasis, links, code), raw HTML shown as
text; then each figure the report drew (``<a id="stem"></a>`` followed by ``![title](stem.png)``)
becomes a ``<figure>`` with its PNG inlined, any other image only its alt text,
and the figures of a section share a responsive grid. Tables scroll inside their own box, never the
page, and sort by a click on a column's header (numbers as numbers).
"""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from pathlib import Path

import markdown

_STEM = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # a figure the report drew: a plain file name, no folder
_ANCHOR = re.compile(r'<a id="(?P<stem>[^"]+)"></a>')  # report.md's anchor before a figure
_FIGURE = re.compile(r'<p><img alt="(?P<alt>[^"]*)" src="(?P<stem>[A-Za-z0-9_.-]+)\.png"\s*/?>\s*</p>')
_IMG = re.compile(r"<img\b[^>]*>")
_HREF = re.compile(r'<a href="(?P<url>[^"]*)"[^>]*>')
_RUN = re.compile(r"(?:<figure [^>]*>.*?</figure>\s*)+", re.DOTALL)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1400px;margin:1.5em auto;
  padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
p,li,td,th{overflow-wrap:anywhere}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}
pre{background:#f5f5f5;padding:1em;overflow:auto}pre code{background:none}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,520px),1fr));gap:1em;align-items:start}
figure{margin:0;border:1px solid #eee;padding:.3em}figure img{width:100%;height:auto;display:block}
figure:target{outline:3px solid #f0a000}
.table{overflow-x:auto;max-width:100%;margin:.5em 0 1em}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafafa}
"""

# Click a header: sort its table's rows by that column, numbers by value ("1.2 ms" < "3 ms"), again to reverse.
SCRIPT = """
document.querySelectorAll("table").forEach(t => t.querySelectorAll("th").forEach((th, i) => {
  th.addEventListener("click", () => {
    const body = t.tBodies[0], up = th.getAttribute("aria-sort") !== "ascending";
    t.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    const key = r => { const s = r.cells[i] ? r.cells[i].textContent.trim() : "";
      const n = parseFloat(s.replace(/[^0-9eE.+-].*$/, "")); return isNaN(n) ? s : n; };
    [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
      const c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return up ? c : -c; }).forEach(r => body.appendChild(r));
  });
}));
"""


def html_page(text: str, folder: Path, title: str, figures: Iterable[str] = ()) -> str:
    """``text`` (a report's markdown) as HTML, the figures named in ``figures`` (the stems the report drew
    into ``folder``) read from there and inlined.

    Nothing in ``text`` becomes markup it did not mean: raw HTML is shown as text, an image is inlined
    only when it is one of ``figures`` (any other becomes its alt text: nothing is loaded from elsewhere
    on the disk), and a link goes only to an anchor of the page or to http(s).
    """
    own = {stem for stem in figures if _STEM.fullmatch(stem)}
    lines = [line for line in text.splitlines() if _ANCHOR.fullmatch(line) is None
             or _ANCHOR.fullmatch(line)["stem"] not in own]  # type: ignore[index]
    renderer = markdown.Markdown(extensions=["tables", "fenced_code"], output_format="html")
    renderer.preprocessors.deregister("html_block")  # raw HTML in the text is text, not markup
    renderer.inlinePatterns.deregister("html")
    body = renderer.convert("\n".join(lines))

    def figure(m: re.Match[str]) -> str:
        stem, path = m["stem"], folder / f"{m['stem']}.png"
        if stem not in own or path.is_symlink() or not path.is_file():
            return f"<p>{m['alt']}</p>"
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<figure id="{stem}"><img alt="{m["alt"]}" src="data:image/png;base64,{data}"></figure>\n'

    def other_image(m: re.Match[str]) -> str:  # an image the report did not draw: its alt text alone
        src, alt = re.search(r'src="([^"]*)"', m[0]), re.search(r'alt="([^"]*)"', m[0])
        if src and src[1].endswith(".png") and src[1][:-4] in own:
            return m[0]
        return html.escape(html.unescape(alt[1])) if alt else ""

    body = _IMG.sub(other_image, body)
    body = _FIGURE.sub(figure, body)
    body = _HREF.sub(lambda m: m[0] if m["url"].startswith(("#", "https://", "http://")) else "<a>", body)
    body = _RUN.sub(lambda m: f'<div class="figures">\n{m.group(0).strip()}\n</div>\n', body)
    body = body.replace("<table>", '<div class="table"><table>').replace("</table>", "</table></div>")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>archbench: {html.escape(title)}</title><style>{STYLE}</style></head><body>\n{body}\n"
            f"<script>{SCRIPT}</script>\n</body></html>\n")
