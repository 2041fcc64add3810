"""A static site of a grid's results, to read every result without running anything.

    python -m ntk_utils.report outputs/runs/quick                  # make report (after make quick)
    python -m ntk_utils.report outputs/reference/cpu               # make report-reference
    python -m ntk_utils.report GRID_DIR [--out DIR] [--reference DIR] [--screenshot PNG]

Reads what a grid run left in its folder (``ntk_utils.grid``: each cell's executed notebook,
results.json and figures; the executed summary notebook in ``figures/``) and writes, into
``outputs/report/<grid>/`` (git-ignored) unless ``--out`` says otherwise:

    index.html    the front page: the grid and its provenance (the git commits, code fingerprints,
                  versions and devices in the cells' results.json), Figure 1, the tally of verdicts,
                  the reproduction check against the reference (reproduce.compare: "k of K numbers
                  within noise", and how many verdicts are the same), the failed, stale, not-run and
                  orphaned cells with why, the table of exponents, the underfit caveats, the verdict table
                  (one row per claim: cell, claim, held / not held / inconclusive, why), a gallery
                  of every cell's figures (captioned with the cell) and every executed notebook linked
    notebooks/    one page per executed notebook (nbconvert's HTMLExporter, images embedded), the
                  summary's and those of failed cells included
    figures/      copies of the figures the front page shows

The reference is ``outputs/reference/<grid>`` unless ``--reference`` names another (none when the
grid folder is the reference itself). Only current cells are counted: the tables, the tally,
Figure 1 (drawn again by ``sections.summary.figure1``) and the reproduction check come from the
cells that ``cells.state`` finds current for the folder's grid file as it is now (``--grid-file``,
else the one its ``grid.json`` records, else ``parameters/<grid>.yaml``), by the summary's own
functions, never from an older ``figures/summary.json``; every other cell folder is listed as
stale, failed or orphaned, with why. The pages are plain HTML and CSS with no
network reference: their math is typeset by the site's own copy of MathJax 2.7 (``mathjax/``,
from the jupyter-server-mathjax package; without it the math shows as TeX), so the folder opens
from disk or can be published as it is. Each page records, once loaded, every image's natural width in its
``data-natural-width`` attribute and ``data-loaded="1"`` on ``<body>``: what the browser test
(tests/test_report.py, headless Chromium) reads. ``screenshot`` takes a picture of a page.
"""
import argparse
import collections
import html
import logging
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
from urllib.parse import quote

from matplotlib import pyplot as plt

from ntk_utils import cells, reproduce
from ntk_utils.gridfile import GridError
from ntk_utils.paths import REPO_ROOT, atomic_write, shown
from ntk_utils.sections import summary

SUMMARY_NOTEBOOK = "00_summary"
# Every page: once loaded, each image's natural width (0: it did not load) and a flag the test reads.
LOADED_SCRIPT = """<script>
window.onload = function () {
  for (const img of document.images) img.dataset.naturalWidth = img.naturalWidth;
  document.body.dataset.loaded = "1";
};
</script>"""


def mathjax_script(prefix):
    """MathJax 2.7 from the site's own ``mathjax/`` folder (``prefix``: the path there from the page),
    typesetting $...$ and $$...$$ as Jupyter does, into MathML that the browser draws (its own
    fonts: a page opened from disk may not load web fonts); ``data-math="done"`` on ``<body>``
    once typeset."""
    return (f"""<script type="text/x-mathjax-config">
MathJax.Hub.Config({{tex2jax: {{inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], processEscapes: true}},
  messageStyle: "none", menuSettings: {{renderer: "NativeMML"}}}});
MathJax.Hub.Queue(function () {{ document.body.dataset.math = "done"; }});
</script>
<script src="{prefix}mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"></script>""")


def copy_mathjax(out):
    """MathJax into ``out/mathjax/`` (from jupyter-server-mathjax: no network); False where that
    package is absent (the pages then show their math as TeX)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return False
    source = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (out / "mathjax" / "MathJax.js").is_file():
        shutil.copytree(source, out / "mathjax", dirs_exist_ok=True)
    return True


# nbconvert's lab template without its network references (require.js, MathJax from a CDN,
# mermaid, widgets): the site's own MathJax instead.
NOTEBOOK_TEMPLATE = ("{%- extends 'lab/index.html.j2' -%}"
                     "{% block html_head_js %}" + LOADED_SCRIPT + "{% endblock %}"
                     "{% block jupyter_widgets %}{% endblock %}"
                     "{% block html_head_js_mathjax %}" + mathjax_script("../") + "{% endblock %}"
                     "{% block html_head_js_mermaidjs %}{% endblock %}"
                     "{% block body_header %}{{ super() }}<p><a href=\"../index.html\">&larr; all results</a></p>"
                     "{% endblock %}")
CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; vertical-align: top; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.held { background: #e3f4e1; } .not-held { background: #fbe2e0; } .inconclusive { background: #f4f0dc; }
.failed { color: #b00020; } .stale, .note { color: #8a6d00; } .muted { color: #777; }
img.figure1 { max-width: 100%; border: 1px solid #eee; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1em; }
.gallery figure { margin: 0; border: 1px solid #eee; padding: .4em; }
.gallery img { width: 100%; } .gallery figure.wide { grid-column: span 2; } figcaption { font-size: 13px; }
code { font-size: 13px; }
"""


def esc(value):
    return html.escape(str(value))


def num(value, fmt=".3f"):
    return "&ndash;" if value is None else format(value, fmt)


def commit(value):
    """A git commit as results.json records it, shortened (keeping a "+dirty" mark)."""
    return str(value)[:10] + "+dirty" * str(value).endswith("+dirty") if value else ""


def href(path):
    return quote(str(path))


# ------------------------------------------------------------------------ what the grid folder holds

def summary_of(grid_dir, grid_file=None):
    """The :class:`ntk_utils.sections.summary.Summary` of the folder's current cells (its grid file:
    ``cells.grid_file_of``), as the summary notebook computes it."""
    return summary.run(str(cells.grid_file_of(grid_dir, grid_file)), str(grid_dir))


def cells_of(grid_dir, s):
    """[(cell id, folder, status, results.json record or None)] of every cell folder with an
    executed notebook or results, current cells first; status: summarized (current), failed (a
    ``<cell>.failed/`` folder), orphaned (no cell of the grid) or stale (any other results)."""
    orphaned, out = set(s.not_summarized["orphaned"]), []
    for cell, folder, failed in cells.walk(grid_dir):
        record = None if failed or not (folder / "results.json").is_file() else cells.read_results(folder / "results.json")
        status = "failed" if failed else "orphaned" if f"{folder.parent.name}/{folder.name}" in orphaned \
            else "summarized" if cell in s.records else "stale"
        if (folder / "notebook.ipynb").is_file() or record is not None:
            out.append((cell, folder, status, record))
    order = {cell: i for i, cell in enumerate([*s.records, *s.not_summarized["stale"], *s.not_summarized["failed"]])}
    return sorted(out, key=lambda r: (order.get(r[0], len(order)), r[0], r[2]))


def provenance(records):
    """Lines naming the git commits, code fingerprints, versions and devices of the cells' results."""
    metas = [r.get("meta", {}) for r in records]

    def counted(key, shown=str):
        c = collections.Counter(shown(m[key]) if m.get(key) else "unknown" for m in metas)
        return ", ".join(f"<code>{esc(k)}</code> ({n} cell{'s' * (n != 1)})" for k, n in c.most_common())

    started = sorted(m["started"] for m in metas if m.get("started"))
    lines = [f"git commit {counted('git_commit', commit)}", f"code fingerprint {counted('code_fingerprint')}",
             f"versions {counted('versions')}", f"device {counted('device')}"]
    if started:
        lines.append(f"cells run from {esc(started[0])} to {esc(started[-1])}")
    return lines


def reproduction(grid_dir, reference, s, grid_file=None):
    """The reproduction check of the current cells against ``reference`` (reproduce.compare, and
    the verdicts of the reference's cells), as HTML."""
    if reference is None:
        return ("<p>No reference to compare with (the default, <code>outputs/reference/&lt;grid&gt;</code>, is "
                "absent or this folder itself; <code>--reference DIR</code> names another).</p>")
    r = reproduce.compare(grid_dir, reference, grid_file)
    reference_cells = len(r["reproduced"]) + len(r["not_reproduced"])
    parts = [f"<p>Against <code>{esc(shown(reference))}</code>: <b>{r['within']} of {r['compared']} "
             f"numbers within noise</b> (3&middot;&radic;2 standard errors of the reference's own spread), "
             f"{len(r['reproduced'])} of {reference_cells} reference cells reproduced by a current cell"]
    theirs = {(c, claim): v for c, claim, v, _ in summary.claim_rows(
        {c: cells.read_results(path) for c, path in cells.finished_cells(reference).items()})}
    both = [(c, claim, v) for c, claim, v, _ in s.claims if (c, claim) in theirs]
    parts.append(f"; {sum(theirs[c, claim] == v for c, claim, v in both)} of {len(both)} verdicts the same.</p>")
    if r["outside"]:
        parts.append("<table><tr><th>cell</th><th>curve</th><th>x</th><th>fresh</th><th>reference</th>"
                     "<th>allowed &plusmn;</th></tr>")
        parts += [f"<tr><td>{esc(cell)}</td><td>{esc(name)}</td><td>{esc(x_name)}={esc(x)}</td>"
                  f"<td class=num>{num(got, '.4f')}</td><td class=num>{num(ref, '.4f')}</td>"
                  f"<td class=num>{num(allowed, '.4f')}</td></tr>"
                  for cell, name, x_name, x, got, ref, allowed in r["outside"]]
        parts.append("</table>")
    if r["not_reproduced"]:
        parts.append("<p class=stale>Reference cells not reproduced by a current cell: "
                     + esc("; ".join(f"{cell} ({why})" for cell, why in r["not_reproduced"])) + "</p>")
    if r["only_fresh"]:
        parts.append(f"<p class=muted>Cells only in this grid: {esc(', '.join(r['only_fresh']))}</p>")
    return "".join(parts)


# ------------------------------------------------------------------------ writing the site

def write(path, data):
    """Write ``data`` (str or bytes) to ``path`` atomically, readable by all (a site to publish)."""
    with atomic_write(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    pathlib.Path(path).chmod(0o644)


def notebook_exporter():
    import jinja2
    from nbconvert import HTMLExporter
    quiet = logging.getLogger("ntk_utils.report.nbconvert")   # not a warning per figure without alt text
    quiet.setLevel(logging.ERROR)
    return HTMLExporter(extra_loaders=[jinja2.DictLoader({"report.html.j2": NOTEBOOK_TEMPLATE})],
                        template_file="report.html.j2", embed_images=True, log=quiet)


def convert(exporter, ipynb, page, title):
    """One executed notebook as an HTML page (its images embedded)."""
    import nbformat
    body, _ = exporter.from_notebook_node(nbformat.read(ipynb, as_version=4),
                                          resources={"metadata": {"name": title, "path": str(ipynb.parent)}})
    write(page, body)


def table(header, rows):
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
            + "".join(rows) + "</table>")


def build(grid_dir, out_dir=None, reference=None, grid_file=None):
    """Write the site of the grid folder ``grid_dir`` (its grid file: ``cells.grid_file_of``);
    returns the path of its index.html."""
    grid_dir = pathlib.Path(grid_dir).resolve()
    if not grid_dir.is_dir():
        raise FileNotFoundError(f"no grid folder at {grid_dir}")
    name = grid_dir.name
    out = pathlib.Path(out_dir) if out_dir else REPO_ROOT / "outputs" / "report" / name
    if reference is None:
        default = REPO_ROOT / "outputs" / "reference" / name
        reference = default if default.is_dir() and default.resolve() != grid_dir else None
    reference = pathlib.Path(reference).resolve() if reference else None
    for sub in ("notebooks", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    with_math = copy_mathjax(out)
    s = summary_of(grid_dir, grid_file)
    rows = cells_of(grid_dir, s)
    exporter = notebook_exporter()

    # The notebooks, one page each; the figures, copied.
    pages, gallery = [], []
    summary_nb = grid_dir / "figures" / "notebook.ipynb"
    if summary_nb.is_file():
        convert(exporter, summary_nb, out / "notebooks" / f"{SUMMARY_NOTEBOOK}.html", f"{name}: {SUMMARY_NOTEBOOK}")
        pages.append(f"<tr><td><a href=\"notebooks/{SUMMARY_NOTEBOOK}.html\">{SUMMARY_NOTEBOOK}</a></td>"
                     "<td>the summary</td><td colspan=4 class=muted>Figure 1, exponents and verdicts</td></tr>")
    for cell, folder, status, record in rows:
        page = f"{folder.parent.name}--{folder.name}.html"
        link = f"<a href=\"notebooks/{href(page)}\">{esc(cell)}</a>"
        if (folder / "notebook.ipynb").is_file():
            convert(exporter, folder / "notebook.ipynb", out / "notebooks" / page, f"{name}: {cell} ({status})")
        else:
            link = esc(cell) + " <span class=muted>(no notebook)</span>"
        meta = (record or {}).get("meta", {})
        pages.append(f"<tr><td>{link}</td><td class=\"{status.split()[0]}\">{esc(status)}</td>"
                     f"<td><code>{esc(commit(meta.get('git_commit')))}</code></td>"
                     f"<td><code>{esc(meta.get('code_fingerprint', ''))}</code></td>"
                     f"<td>{esc(meta.get('device', ''))}</td>"
                     f"<td class=num>{num(meta.get('wall_seconds'), '.0f')}</td></tr>")
        for png in sorted(folder.glob("*.png")):
            copied, data = f"{folder.parent.name}--{folder.name}--{png.name}", png.read_bytes()
            write(out / "figures" / copied, data)
            width, height = struct.unpack(">II", data[16:24])   # the PNG header's IHDR
            note = "" if status == "summarized" else f" <span class=\"{status.split()[0]}\">({esc(status)})</span>"
            gallery.append(f"<figure{' class=wide' * (width > 1.7 * height)}><a href=\"figures/{href(copied)}\">"
                           f"<img src=\"figures/{href(copied)}\" alt=\"{esc(cell)} {esc(png.stem)}\"></a>"
                           f"<figcaption>{link}: {esc(png.stem)}{note}</figcaption></figure>")
    if s.records:   # drawn again from the current cells, as the summary notebook draws it
        plt.close(summary.figure1(s.records, out / "figures" / "figure1.png"))
        figure1 = "<img class=figure1 src=\"figures/figure1.png\" alt=\"Figure 1\">"
    else:
        figure1 = "<p class=note>No Figure 1: no cell has current results.</p>"

    # The front page.
    listed = "".join(f"<p class=\"{'failed' if key == 'failed' else 'stale'}\"><b>{len(ids)} {key}</b> "
                     f"({esc(what)}, not counted): {esc('; '.join(map(s.named, ids)))}</p>"
                     for key, what in summary.NOT_SUMMARIZED.items() if (ids := s.not_summarized[key]))
    exponents = table(["cell", "comparison", "&alpha; (a)", "&alpha; (b)", "&Delta;&alpha; [95% CI]",
                       "error at largest n (a vs b)", "verdict"],
                      [f"<tr class=\"{status.replace(' ', '-')}\"><td>{esc(c)}</td><td>{esc(claim)}</td>"
                       f"<td class=num>{num(a1)}</td><td class=num>{num(a2)}</td>"
                       f"<td class=num>{num(d, '+.3f')} [{num(lo, '+.3f')}, {num(hi, '+.3f')}]</td>"
                       f"<td class=num>{num(e1)} vs {num(e2)}</td><td>{esc(status)}</td></tr>"
                       for c, claim, a1, a2, d, lo, hi, e1, e2, status in s.exponents])
    underfit = "".join(f"<li>{esc(c)}: {esc(t)}</li>" for c, t in s.underfit.items())
    verdicts = ("<table id=verdicts><thead><tr><th>cell</th><th>claim</th><th>verdict</th><th>why</th></tr></thead>"
                "<tbody>" + "".join(f"<tr class=\"verdict {status.replace(' ', '-')}\"><td>{esc(c)}</td>"
                                    f"<td>{esc(claim)}</td><td><b>{esc(status)}</b></td><td>{esc(why)}</td></tr>"
                                    for c, claim, status, why in s.claims) + "</tbody></table>")
    tally = ", ".join(f"{esc(k)}: {v}" for k, v in s.tally.items())
    records = [r for *_, r in rows if r is not None]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ntk-limits: grid {esc(name)}</title>
<style>{CSS}</style>
{LOADED_SCRIPT}
{mathjax_script("") if with_math else ""}
</head><body>
<h1>Limitations of the NTK: results of grid <code>{esc(name)}</code></h1>
<p class=muted>Folder <code>{esc(shown(grid_dir))}</code>, grid file <code>{esc(s.grid_file)}</code>;
{len(s.records)} cells summarized (current). {'<br>'.join(provenance(records))}</p>
<p><b>Verdicts</b>: {tally}.</p>
{listed}
<h2>Figure 1</h2>
{figure1}
<h2>Reproduction check</h2>
{reproduction(grid_dir, reference, s, grid_file)}
<h2>Exponents</h2>
<p>&alpha; in test error &asymp; C&middot;n<sup>&minus;&alpha;</sup>;
paired-bootstrap 95% intervals of the difference.</p>
{exponents}
{f"<h3>Underfit networks</h3><ul>{underfit}</ul>" if underfit else ""}
<h2>Verdicts ({len(s.claims)} claims)</h2>
{verdicts}
<h2>Figures</h2>
<div class=gallery>{"".join(gallery)}</div>
<h2>Executed notebooks</h2>
{table(["notebook", "status", "git commit", "code fingerprint", "device", "seconds"], pages)}
<p class=muted>Built by <code>python -m ntk_utils.report</code> from the files the grid run left; nothing was run.</p>
</body></html>
"""
    write(out / "index.html", page)
    return out / "index.html"


# ------------------------------------------------------------------------ looking at it

def browser():
    """Chromium's path, or None (Debian: apt-get install chromium)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args, timeout=120):
    """Run headless Chromium with ``args`` (a throwaway profile); returns its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                               f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=timeout, check=True)
    return done.stdout


def screenshot(index_html, png_path, size=(1280, 1600)):
    """A PNG of the page ``index_html`` as headless Chromium shows it in a window of ``size``."""
    png_path = pathlib.Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    chromium("--hide-scrollbars", f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=10000",
             f"--screenshot={png_path}", pathlib.Path(index_html).resolve().as_uri())
    return png_path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ntk_utils.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("grid_dir", help="a grid folder, e.g. outputs/runs/quick")
    parser.add_argument("--out", help="the site's folder (default: outputs/report/<grid>/)")
    parser.add_argument("--reference", help="the reference grid folder (default: outputs/reference/<grid>)")
    parser.add_argument("--grid-file", help="the folder's grid file (default: the one its grid.json records, "
                                            "else parameters/<grid>.yaml)")
    parser.add_argument("--screenshot", help="also write a PNG of the front page here (needs Chromium)")
    args = parser.parse_args(argv)
    try:
        index = build(args.grid_dir, args.out, args.reference, args.grid_file)
    except (FileNotFoundError, GridError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {index.resolve().as_uri()}")
    if args.screenshot:
        if not browser():
            print("error: --screenshot needs Chromium (Debian: apt-get install chromium)", file=sys.stderr)
            return 2
        print(f"screenshot: {screenshot(index, args.screenshot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
