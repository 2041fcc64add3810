"""The static site of a grid's results (ntk_utils.report), built from a copy of the committed quick
reference made partial (one cell failed, one stale), read in Python and in headless Chromium."""
import html.parser
import json
import shutil
import subprocess
from urllib.parse import unquote

import pytest

from ntk_utils import report
from tests.conftest import ROOT

REFERENCE = ROOT / "outputs" / "reference" / "quick"
FAILED, STALE = "02_width/default", "03_hyperparameters/variants=gd"


class Page(html.parser.HTMLParser):
    """The tags of a page: {tag: [attrs]}, and the text."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text = {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.setdefault(tag, []).append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)

    def verdict_rows(self):
        return [tr for tr in self.tags.get("tr", []) if "verdict" in (tr.get("class") or "").split()]

    def links(self, prefix):
        return [unquote(a["href"]) for a in self.tags.get("a", []) if a.get("href", "").startswith(prefix)]


def partial_grid(tmp_path):
    """A copy of the quick reference as the summary would have left it had one cell failed and one
    been stale: the failed cell in <cell>.failed/, both out of the summary's cells and claims."""
    grid = tmp_path / "quick"
    shutil.copytree(REFERENCE, grid)
    (grid / FAILED).rename(grid / f"{FAILED}.failed")
    path = grid / "figures" / "summary.json"
    s = json.loads(path.read_text("utf-8"))
    gone = {FAILED, STALE}
    for key in ("claims", "exponents"):
        s[key] = [row for row in s[key] if row[0] not in gone]
    s["cells"] = [c for c in s["cells"] if c not in gone]
    s["underfit"] = {c: t for c, t in s["underfit"].items() if c not in gone}
    s["failed"], s["stale"] = [FAILED], [STALE]
    path.write_text(json.dumps(s), "utf-8")
    return grid, s


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    grid, s = partial_grid(tmp)
    assert report.main([str(grid), "--out", str(tmp / "site"), "--reference", str(REFERENCE)]) == 0
    return tmp / "site" / "index.html", s


def test_front_page(site):
    index, s = site
    page = Page(index.read_text("utf-8"))
    text = " ".join(page.text)
    assert len(page.verdict_rows()) == len(s["claims"]) > 0
    held = sum(status == "held" for _, _, status, _ in s["claims"])
    assert f"held: {held}," in text                                      # the tally of the claims shown
    assert "1 failed" in text and FAILED in text and "1 stale" in text and STALE in text
    assert "numbers within noise" in text and "verdicts the same" in text
    notebooks = page.links("notebooks/")
    # the summary's, every finished cell's (the stale one included) and the failed cell's
    assert len(set(notebooks)) == 1 + len(s["cells"]) + 1 + 1
    assert "notebooks/02_width--default.failed.html" in notebooks
    for target in notebooks + [img["src"] for img in page.tags["img"]]:
        assert (index.parent / unquote(target)).is_file(), target
    figures = [p for p in REFERENCE.glob("*/*/*.png")]
    assert len(page.tags["img"]) == 1 + len(figures)   # Figure 1 and the gallery
    assert "http" not in " ".join(str(a) for tags in page.tags.values() for a in tags)   # nothing from a network


def test_grid_whose_summary_has_not_run(tmp_path):
    """Without figures/ (a run killed before its summary) the tables come from the finished cells."""
    from ntk_utils.sections import summary
    grid = tmp_path / "quick"
    for cell in ("primer/default", "01_data_scaling/default"):
        shutil.copytree(REFERENCE / cell, grid / cell)
    index = report.build(grid, tmp_path / "site")
    records = {c: json.loads((grid / c / "results.json").read_text("utf-8"))
               for c in ("primer/default", "01_data_scaling/default")}
    page = Page(index.read_text("utf-8"))
    assert len(page.verdict_rows()) == len(summary.claim_rows(records)) > 0
    assert "No Figure 1" in " ".join(page.text)
    assert "numbers within noise" in " ".join(page.text)   # the default reference: outputs/reference/quick
    other = grid.rename(tmp_path / "other")                # a grid with no reference
    assert "No reference" in " ".join(Page(report.build(other, tmp_path / "site").read_text("utf-8")).text)
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
    index, s = site
    page = dom(index)
    assert page.tags["body"][0].get("data-loaded") == "1"
    assert page.tags["img"] and all(int(img.get("data-natural-width", 0)) > 0 for img in page.tags["img"]), \
        [img["src"] for img in page.tags["img"] if int(img.get("data-natural-width", 0)) == 0]
    assert len(page.verdict_rows()) == len(s["claims"])
    notebook = dom(index.parent / "notebooks" / "01_data_scaling--default.html")
    assert notebook.tags["body"][0].get("data-loaded") == "1"
    assert any("01_data_scaling/default" in t for t in notebook.text)   # its title
    assert notebook.tags["img"] and all(int(img.get("data-natural-width", 0)) > 0 for img in notebook.tags["img"])
    png = report.screenshot(index, tmp_path / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
