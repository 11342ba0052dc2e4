"""The widget explorers of chapters 1-3 in a real browser: JupyterLab + headless Chromium (Playwright).

For each chapter the test starts from a fresh copy of the committed notebook, runs all cells in
JupyterLab, checks that every code cell ran without an error output and that no widget failed to
render, then moves one slider of the chapter's explorer with the keyboard (arrow key on the
focused slider handle) and checks that the explorer's figure -- the PNG shown in the widget's
output area -- changes. A widget whose ``update`` does not redraw fails here even though the
slider moves.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``SPECTRALKD_CHROMIUM``), ``playwright``
from PyPI (its ``browser`` extra; never ``playwright install``) and JupyterLab; skips with a
message naming what is missing. CI (``.ci/run``) installs all three and sets
``SPECTRALKD_REQUIRE="book browser"``, so there it runs (and fails if any is missing).
``SPECTRALKD_BROWSER_SHOTS=DIR`` saves a screenshot of each explorer after the slider moved.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SPECTRALKD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# (notebook, label of the slider to move, what the explorer is)
CHAPTERS = [
    ("01_fourier_intuition.ipynb", "winding k", "PhasorExplorer"),
    ("02_vit_spectral_analysis.ipynb", "frequency bin k", "ViTSpectrumExplorer"),
    ("03_text_spectral_analysis.ipynb", "frequency bin k", "TextSpectrumExplorer"),
]

# Generous but bounded waits (the CI machine has 2 cores shared with the other test worker).
SERVER_START_S = 180
NOTEBOOK_OPEN_S = 180
RUN_ALL_S = 900
REDRAW_S = 120


def _missing() -> list[str]:
    missing = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set SPECTRALKD_CHROMIUM)")
    for module, hint in [("playwright", "pip install playwright, or the project's [browser] extra; "
                                        "no `playwright install` needed"),
                         ("jupyterlab", "pip install jupyterlab")]:
        try:
            __import__(module)
        except ImportError:
            missing.append(f"Python package {module!r} ({hint})")
    return missing


_MISSING = _missing()
pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module", autouse=True)
def browser_available():
    """Skip when Chromium, Playwright or JupyterLab is missing -- fail instead where
    ``SPECTRALKD_REQUIRE`` names ``browser`` (CI sets it: there the test must run)."""
    if _MISSING:
        message = "browser widget test needs: " + "; ".join(_MISSING)
        if "browser" in os.environ.get("SPECTRALKD_REQUIRE", "").split():
            pytest.fail(message + " (SPECTRALKD_REQUIRE names 'browser')")
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """JupyterLab user settings for the test: every cell in the DOM, no news or update checks."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                             "checkForUpdates": False},
    }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class JupyterLabServer:
    """A JupyterLab server on 127.0.0.1 (free port, random token) over a temporary root directory."""

    def __init__(self, root: Path, home: Path) -> None:
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        _write_settings(home / "settings")
        env = dict(os.environ)
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            # what the notebooks need: the quick preset, offline, this checkout's package
            SPECTRALKD_PRESET="quick",
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            OMP_NUM_THREADS="1",  # the other pytest worker has the other core
            PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]),
        )
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, timeout: float = SERVER_START_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def shutdown_kernels(self) -> None:
        """Shut every kernel down (they run in their own sessions, so stopping the server is not enough)."""
        with urllib.request.urlopen(self.url("api/kernels"), timeout=10) as response:
            kernels = json.load(response)
        for kernel in kernels:
            request = urllib.request.Request(self.url(f"api/kernels/{kernel['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=60).close()

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.shutdown_kernels()
        except OSError:
            pass
        finally:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=30)
            self._log.close()


@pytest.fixture(scope="module")
def lab(browser_available, tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    for notebook, _, _ in CHAPTERS:
        shutil.copy(REPO / "notebooks" / notebook, root / notebook)
    server = JupyterLabServer(root, tmp_path_factory.mktemp("lab-home"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


CURRENT = "window.jupyterapp.shell.currentWidget"

OPEN_JS = f"""async () => {{
    const panel = {CURRENT};
    await panel.context.ready;
    await panel.sessionContext.ready;
    return panel.context.path;
}}"""

RUN_ALL_JS = """() => {
    window.__runAll = undefined;
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        (ok) => { window.__runAll = String(ok); },
        (error) => { window.__runAll = 'error: ' + error; });
}"""

FIGURE_JS = """(label) => {
    // the explorer: the ipywidgets `interactive` box holding a slider with this label; its figure is
    // the last <img> in the box's output area (a redraw replaces it with a new element)
    const boxes = [...document.querySelectorAll('.widget-interact')].filter((box) =>
        [...box.querySelectorAll('.widget-slider .widget-label')].some((l) => l.textContent.trim() === label));
    if (boxes.length !== 1) return {error: `${boxes.length} explorers with a slider labelled ${label}`};
    const images = boxes[0].querySelectorAll('.widget-output img');
    const img = images.length ? images[images.length - 1] : null;
    return {count: images.length, src: img ? img.getAttribute('src') : null, seen: img ? !!img.__seenByTest : false};
}"""

MARK_SEEN_JS = f"""(label) => {{
    ({FIGURE_JS})(label);
    document.querySelectorAll('.widget-interact .widget-output img').forEach((img) => {{ img.__seenByTest = true; }});
}}"""

# A real redraw changes far more of the figure than matplotlib's constrained-layout jitter between
# two renders of the same state (measured: < 0.001 % of the pixels; moving k by one: 1.5-2 %).
MIN_CHANGED_FRACTION = 0.001


def _run_chapter(page, lab: JupyterLabServer, notebook: str) -> dict:
    """Open ``notebook``, run all cells, wait for the kernel to be idle; return the notebook JSON."""
    page.goto(lab.url(f"lab/tree/{notebook}"), timeout=NOTEBOOK_OPEN_S * 1000)
    page.wait_for_function(f"window.jupyterapp && {CURRENT} && {CURRENT}.sessionContext && "
                           f"{CURRENT}.context && {CURRENT}.context.path === {json.dumps(notebook)}",
                           timeout=NOTEBOOK_OPEN_S * 1000)
    page.evaluate(OPEN_JS)
    page.wait_for_function(f"{CURRENT}.sessionContext.session && {CURRENT}.sessionContext.session.kernel && "
                           f"{CURRENT}.sessionContext.session.kernel.status === 'idle'",
                           timeout=NOTEBOOK_OPEN_S * 1000)
    page.evaluate(RUN_ALL_JS)
    page.wait_for_function("window.__runAll !== undefined", timeout=RUN_ALL_S * 1000, polling=500)
    page.wait_for_function(f"{CURRENT}.sessionContext.session.kernel.status === 'idle'",
                           timeout=RUN_ALL_S * 1000, polling=500)
    result = page.evaluate("window.__runAll")
    model = page.evaluate(f"{CURRENT}.content.model.toJSON()")
    _assert_no_error_outputs(notebook, model)
    assert result == "true", f"{notebook}: 'run all cells' finished with {result!r}"
    not_run = [i for i, cell in enumerate(model["cells"])
               if cell["cell_type"] == "code" and cell.get("execution_count") is None]
    assert not not_run, f"{notebook}: code cells {not_run} did not run"
    return model


def _assert_no_error_outputs(notebook: str, model: dict) -> None:
    errors = [
        f"cell {i}: {output.get('ename')}: {output.get('evalue')}"
        for i, cell in enumerate(model["cells"]) if cell["cell_type"] == "code"
        for output in cell.get("outputs", []) if output.get("output_type") == "error"
    ]
    assert not errors, f"{notebook}: error outputs in JupyterLab:\n" + "\n".join(errors)


def _assert_widgets_fine(page, notebook: str, explorer: str) -> None:
    body = page.inner_text("body")
    assert "Error displaying widget" not in body, f"{notebook}: a widget failed to render"
    shown = page.locator(".widget-interact .widget-output").all_inner_texts()
    assert not any("Traceback" in text or "Error" in text for text in shown), \
        f"{notebook}: the {explorer} raised while drawing:\n" + "\n".join(shown)


def _move_slider_and_wait(page, label: str, notebook: str, explorer: str) -> tuple[str, str, str]:
    """Press one arrow key on the slider labelled ``label``; wait until the explorer shows a new figure.

    Returns the readout before and after and the new figure's ``src``."""
    slider = page.locator(".widget-interact .widget-slider", has=page.locator(".widget-label", has_text=label))
    assert slider.count() == 1, f"{notebook}: expected one slider labelled {label!r}, found {slider.count()}"
    handle, readout = slider.locator(".noUi-handle"), slider.locator(".widget-readout")
    before = readout.inner_text().strip()
    at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
    page.evaluate(MARK_SEEN_JS, label)
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    page.wait_for_function("([el, before]) => el.textContent.trim() !== before",
                           arg=[readout.element_handle(), before], timeout=REDRAW_S * 1000)
    after = readout.inner_text().strip()
    try:
        page.wait_for_function(f"(label) => {{ const f = ({FIGURE_JS})(label); return f.count > 0 && !f.seen; }}",
                               arg=label, timeout=REDRAW_S * 1000, polling=250)
    except Exception as error:  # playwright's TimeoutError
        pytest.fail(f"{notebook}: moving {label!r} from {before} to {after} showed no new {explorer} figure "
                    f"within {REDRAW_S} s ({type(error).__name__})")
    return before, after, page.evaluate(FIGURE_JS, label)["src"]


def _png_pixels(src: str):
    import base64
    import io

    import matplotlib.image

    prefix = "data:image/png;base64,"
    assert src and src.startswith(prefix), f"the figure is not an inline PNG: {str(src)[:60]!r}"
    data = base64.b64decode(src[len(prefix):])
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the figure's data is not a PNG"
    return matplotlib.image.imread(io.BytesIO(data), format="png")


def changed_fraction(src_a: str, src_b: str) -> float:
    """Fraction of pixels that differ between two inline PNGs (1.0 when their sizes differ)."""
    import numpy as np

    a, b = _png_pixels(src_a), _png_pixels(src_b)
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a.astype(float) - b.astype(float)).sum(axis=-1) > 0.05).mean())


@pytest.mark.parametrize("notebook,label,explorer", CHAPTERS, ids=[c[2] for c in CHAPTERS])
def test_explorer_redraws_when_its_slider_moves(lab, browser, notebook, label, explorer):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _run_chapter(page, lab, notebook)
        _assert_widgets_fine(page, notebook, explorer)
        page.wait_for_function(f"(label) => ({FIGURE_JS})(label).count > 0", arg=label, timeout=REDRAW_S * 1000)
        first = page.evaluate(FIGURE_JS, label)
        assert "error" not in first, f"{notebook}: {first.get('error')}"
        _png_pixels(first["src"])

        # Two moves: the first lets matplotlib's constrained layout settle (a figure's first few
        # renders differ by a pixel or two in size even when nothing changed); the second must
        # change the picture.
        _move_slider_and_wait(page, label, notebook, explorer)
        settled = page.evaluate(FIGURE_JS, label)["src"]
        before, after, moved = _move_slider_and_wait(page, label, notebook, explorer)
        fraction = changed_fraction(settled, moved)
        print(f"{explorer}: {label!r} {before} -> {after} changed {fraction:.3%} of the figure's pixels")
        if os.environ.get("SPECTRALKD_BROWSER_SHOTS"):  # screenshots for a human to look at
            shots = Path(os.environ["SPECTRALKD_BROWSER_SHOTS"])
            shots.mkdir(parents=True, exist_ok=True)
            page.locator(".widget-interact").screenshot(path=str(shots / f"{Path(notebook).stem}.png"))
        assert fraction >= MIN_CHANGED_FRACTION, (
            f"{notebook}: moving {label!r} from {before} to {after} did not redraw the {explorer} figure "
            f"({fraction:.5%} of its pixels changed; a redraw changes at least {MIN_CHANGED_FRACTION:.1%})")

        page.wait_for_function(f"{CURRENT}.sessionContext.session.kernel.status === 'idle'",
                               timeout=REDRAW_S * 1000)
        _assert_widgets_fine(page, notebook, explorer)
        _assert_no_error_outputs(notebook, page.evaluate(f"{CURRENT}.content.model.toJSON()"))
    except BaseException:  # pytest.fail and playwright's TimeoutError alike: show the server's side
        print(f"--- JupyterLab log (tail) ---\n{lab.log_tail()}")
        raise
    finally:
        page.close()
        lab.shutdown_kernels()
