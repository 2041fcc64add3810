"""The static site of a grid's results (ntk_utils.report), built from a copy of the committed quick
reference made partial (one cell failed, one stale), read in Python and in headless Chromium."""
import html.parser
import json
import re
import shutil
import subprocess
from urllib.parse import unquote

import pytest

from ntk_utils import gridfile, report
from ntk_utils.sections import summary
from tests.conftest import ROOT

REFERENCE, GRID_FILE = ROOT / "outputs" / "reference" / "quick", ROOT / "parameters" / "quick.yaml"
FAILED, STALE = "02_width/default", "03_hyperparameters/variants=gd"


class Page(html.parser.HTMLParser):
    """The tags of a page: {tag: [attrs]}, the text, and the text a reader sees (not scripts or styles)."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text, self.visible, self.hidden = {}, [], [], 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.setdefault(tag, []).append(dict(attrs))
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data):
        self.text.append(data)
        if not self.hidden:
            self.visible.append(data)

    def verdict_rows(self):
        return [tr for tr in self.tags.get("tr", []) if "verdict" in (tr.get("class") or "").split()]

    def links(self, prefix):
        return [unquote(a["href"]) for a in self.tags.get("a", []) if a.get("href", "").startswith(prefix)]


def as_if_current(grid, stale=()):
    """Give each results.json of a copy of the quick reference its cell's fingerprint under the
    code as it is now (but the cells ``stale``), as if this code had run it. The claim rows of
    the current cells, and the repeated claims among them (the tally counts each claim once)."""
    records = {}
    for cell in gridfile.load_grid(GRID_FILE)[1]:
        path = grid / cell.id / "results.json"
        if path.is_file():
            record = json.loads(path.read_text("utf-8"))
            record["run"]["fingerprint"] = "an older one" if cell.id in stale else cell.fingerprint
            path.write_text(json.dumps(record), "utf-8")
            records.update({} if cell.id in stale else {cell.id: record})
    return summary.claim_rows(records), summary.repeated_claims(records)


def partial_grid(tmp_path):
    """A copy of the quick reference as this code would have left it had one cell failed (its
    folder in <cell>.failed/, its older results gone) and one been stale (older results)."""
    grid = tmp_path / "quick"
    shutil.copytree(REFERENCE, grid)
    (grid / FAILED).rename(grid / f"{FAILED}.failed")
    return grid, as_if_current(grid, stale={STALE})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:   # fingerprints no edit elsewhere during the test turns stale
        mp.setattr(gridfile, "code_version", lambda stem: f"{stem} code")
        tmp = tmp_path_factory.mktemp("report")
        grid, (claims, repeated) = partial_grid(tmp)
        assert report.main([str(grid), "--out", str(tmp / "site"), "--reference", str(REFERENCE)]) == 0
        yield tmp / "site" / "index.html", claims, repeated


def test_front_page(site):
    index, claims, repeated = site
    page = Page(index.read_text("utf-8"))
    text = " ".join(page.text)
    assert len(page.verdict_rows()) == len(claims) > 0
    held = sum(status == "held" for cell, claim, status, _ in claims if (cell, claim) not in repeated)
    assert f"held: {held}," in text                                      # the tally of the claims shown
    assert "1 failed" in text and FAILED in text and "1 stale" in text and STALE in text
    assert "numbers within noise" in text and "verdicts the same" in text
    notebooks = page.links("notebooks/")
    # the summary's, every finished cell's (the stale one included) and the failed cell's
    assert len(set(notebooks)) == len(list(REFERENCE.glob("*/*/notebook.ipynb"))) + 1
    assert "notebooks/02_width--default.failed.html" in notebooks
    for target in notebooks + [img["src"] for img in page.tags["img"]]:
        assert (index.parent / unquote(target)).is_file(), target
    figures = [p for p in REFERENCE.glob("*/*/*.png")]
    assert len(page.tags["img"]) == 1 + len(figures)   # Figure 1 and the gallery
    assert "http" not in " ".join(str(a) for tags in page.tags.values() for a in tags)   # nothing from a network


def test_grid_whose_summary_has_not_run(tmp_path, monkeypatch):
    """Without figures/ (a run killed before its summary) the tables and Figure 1 come from the
    current cells all the same; a folder of no known grid file, or none, is refused."""
    monkeypatch.setattr(gridfile, "code_version", lambda stem: f"{stem} code")
    grid = tmp_path / "quick"
    for cell in ("primer/default", "01_data_scaling/default"):
        shutil.copytree(REFERENCE / cell, grid / cell)
    claims, _ = as_if_current(grid)
    page = Page(report.build(grid, tmp_path / "site").read_text("utf-8"))
    assert len(page.verdict_rows()) == len(claims) > 0
    assert "figures/figure1.png" in [img["src"] for img in page.tags["img"]]
    assert "numbers within noise" in " ".join(page.text)   # the default reference: outputs/reference/quick
    other = grid.rename(tmp_path / "other")                # a grid with no reference (nor parameters/other.yaml)
    assert report.main([str(other), "--out", str(tmp_path / "site")]) == 2
    index = report.build(other, tmp_path / "site", grid_file=GRID_FILE)
    assert "No reference" in " ".join(Page(index.read_text("utf-8")).text)
    assert report.main([str(tmp_path / "nothing")]) == 2


def dom(path):
    """The page's DOM after loading in headless Chromium (its onload script has run)."""
    try:
        return Page(report.chromium("--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri(), timeout=60))
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not load {path} within 60 s")


def test_site_in_chromium(site, tmp_path):
    if not report.browser():
        pytest.skip("Chromium not installed (Debian: apt-get install chromium)")
    index, claims, _ = site
    page = dom(index)
    assert page.tags["body"][0].get("data-loaded") == "1"
    assert page.tags["img"] and all(int(img.get("data-natural-width", 0)) > 0 for img in page.tags["img"]), \
        [img["src"] for img in page.tags["img"] if int(img.get("data-natural-width", 0)) == 0]
    assert len(page.verdict_rows()) == len(claims)
    notebook = dom(index.parent / "notebooks" / "01_data_scaling--default.html")
    assert notebook.tags["body"][0].get("data-loaded") == "1"
    assert any("01_data_scaling/default" in t for t in notebook.text)   # its title
    assert notebook.tags["img"] and all(int(img.get("data-natural-width", 0)) > 0 for img in notebook.tags["img"])
    for page in (dom(index.parent / "notebooks" / "primer--default.html"), notebook, page):   # math, typeset offline
        assert page.tags["body"][0].get("data-math") == "done"
        seen = " ".join(page.visible)
        assert "Math Processing Error" not in seen and not re.search(r"\$[^$\s][^$]*\\[a-zA-Z]+[^$]*\$", seen), \
            re.findall(r"\$[^$]{0,60}\$", seen)[:3]
    primer_math = dom(index.parent / "notebooks" / "primer--default.html").tags
    assert "span" in primer_math and any("MathJax" in (s.get("class") or "") for s in primer_math["span"])
    png = report.screenshot(index, tmp_path / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
