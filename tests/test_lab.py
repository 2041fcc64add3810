"""`make lab` in a real browser: a notebook's .py opens as a notebook, runs, saves unchanged.

A copy of the repository's notebooks, JupyterLab settings, Makefile and git-ignore rules becomes a
fresh git repository whose notebook 01 has a parameters cell at tiny sizes on the synthetic task
(committed, so that "unchanged" is measured against it). JupyterLab runs there through `make lab`
(the project's venv, an isolated Jupyter config); headless Chromium opens notebooks/01_data_scaling.py
as a user would (the default viewer), runs all cells, saves, and the test checks the figure and the
claims table are on the page, no cell failed, and `git status` is clean. Skipped without Chromium.
Set NTK_SCREENSHOT_DIR to keep a screenshot of the executed notebook (docs/jupyterlab.png).
"""
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from ntk_utils import report
from tests.cdp import Page, free_port, wait_until
from tests.conftest import ROOT

NOTEBOOK = "notebooks/01_data_scaling.py"
TINY = ('task = "synthetic-bin"\nn_test = 64\nval_size = 32\nwidth = 4\nepochs = 1\nmin_steps = 10\n'
        'n_boot = 100\nn_values = [16, 32]\n')


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def lab(tmp_path):
    if not report.browser():
        pytest.skip("Chromium not installed (Debian: apt-get install chromium)")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("notebooks", "jupyterlab-settings"):
        shutil.copytree(ROOT / name, repo / name)
    for name in ("Makefile", "pyproject.toml", "jupytext.toml", ".gitignore"):
        shutil.copy2(ROOT / name, repo / name)
    text = (repo / NOTEBOOK).read_text()
    # at the end of the parameters cell: after the generated shared defaults, which it overrides
    cell_end = text.index("\n# %%", text.index('# %% tags=["parameters"]\n')) + 1
    (repo / NOTEBOOK).write_text(text[:cell_end] + TINY + text[cell_end:])
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "tiny")

    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "NTK_CACHE_DIR": str(tmp_path / "cache"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    args = (f"--port={port} --no-browser --allow-root --ServerApp.port_retries=0 --IdentityProvider.token={token} "
            "--LabApp.expose_app_in_browser=True")
    venv = os.path.dirname(os.path.dirname(sys.executable))     # the venv running the tests serves the lab
    # -o: the venv's install stamp counts as current (never reinstall the package from this copy)
    server = subprocess.Popen(["make", "-s", "-o", f"{venv}/.installed", "lab", f"VENV={venv}", f"LAB_ARGS={args}"],
                              cwd=repo, env=env,
                              stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    started = time.time()
    try:
        wait_until(lambda: urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).status == 200,
                   90, "JupyterLab's server")
        yield repo, f"{url}/lab?token={token}", started
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_notebook_opens_runs_and_saves_unchanged_in_jupyterlab(lab):
    repo, url, started = lab
    with Page.open(url) as page:
        page.wait_for("window.jupyterapp !== undefined && document.querySelector('.jp-LabShell') !== null")
        kind = page.evaluate(f"""(async () => {{
            await jupyterapp.started; await jupyterapp.restored;
            const w = await jupyterapp.commands.execute('docmanager:open', {{path: '{NOTEBOOK}'}});
            window.nb = w; await w.context.ready;
            return w.hasClass('jp-NotebookPanel') ? 'notebook' : w.node.className; }})()""")
        assert kind == "notebook", f"{NOTEBOOK} opened as {kind!r}, not as a notebook"
        opened = time.time()
        # the kernel the header names starts by itself (no kernel dialog)
        page.wait_for("nb.sessionContext.session?.kernel?.status === 'idle'", timeout=90)
        page.evaluate("jupyterapp.shell.activateById(nb.id); jupyterapp.commands.execute('notebook:run-all-cells'); 1")
        code_cells = "nb.content.widgets.filter(c => c.model.type === 'code')"
        errors = f"{code_cells}.flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')"
        # a failed cell stops run-all: stop waiting then, and show its error
        page.wait_for(f"{errors}.length > 0 || {code_cells}.every(c => c.model.executionCount > 0)"
                      " && nb.sessionContext.session.kernel.status === 'idle'", timeout=900)
        assert page.evaluate(f"{errors}.map(o => o.ename + ': ' + o.evalue)") == []
        print(f"make lab -> {NOTEBOOK} open as a notebook: {opened - started:.1f} s; "
              f"run all cells (tiny sizes): {time.time() - opened:.1f} s")   # shown with pytest -s or -rP
        # the figure and the claims table, rendered (each cell scrolled into view: JupyterLab
        # renders only the cells near the viewport)
        for what, has_output, rendered in (
                ("figure", "o.data && 'image/png' in o.data", "img"),
                ("claims table", "o.data && /[|] claim [|] verdict/.test(o.data['text/markdown'] || '')", "table")):
            index = page.evaluate(f"nb.content.widgets.findIndex(c => c.model.type === 'code' && "
                                  f"c.model.outputs.toJSON().some(o => {has_output}))")
            assert index >= 0, f"no cell shows the {what}"
            page.evaluate(f"(async () => {{ const cell = nb.content.widgets[{index}]; nb.content.activeCellIndex = {index};"
                          f" await nb.content.scrollToCell(cell, 'start'); }})()")
            page.wait_for(f"nb.content.widgets[{index}].node.querySelector('.jp-OutputArea-output {rendered}') !== null",
                          timeout=30)
            if what == "figure" and os.environ.get("NTK_SCREENSHOT_DIR"):
                page.screenshot(os.path.join(os.environ["NTK_SCREENSHOT_DIR"], "jupyterlab.png"))
        page.evaluate("(async () => { await nb.context.save(); })()")
        page.wait_for("!nb.context.model.dirty", timeout=30)
    assert git(repo, "status", "--porcelain") == ""
