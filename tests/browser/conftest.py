"""Real-browser tests: the app as the README launches it, driven by Debian's Chromium.

The server is ``python app.py`` on a free port (shipped checkpoints, real data); Playwright
drives ``/usr/bin/chromium`` headless. A Gradio page keeps a connection open and never
reaches network idle, so tests wait for elements. Every page fails its test on a browser
console error, and screenshots go to ``$LATENT_LAB_SCREENSHOTS`` (default
``/tmp/latentlab-screenshots``) for a person to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"1440x900": (1440, 900), "1280x720": (1280, 720), "390x844": (390, 844)}
# ids of the shown code tables whose columns do not all fit (a phone had to scroll a 7x7 table
# sideways to see its last column)
CUT_CODE_TABLES = ("() => [...document.querySelectorAll('#ll-code-table, #ll-top-table, #ll-bottom-table')]"
                   ".filter(t => t.offsetParent && [...t.querySelectorAll('.virtual-table-viewport')]"
                   ".some(e => e.scrollWidth > e.clientWidth + 1)).map(t => t.id)")
SHOTS = Path(os.environ.get("LATENT_LAB_SCREENSHOTS", "/tmp/latentlab-screenshots"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env: dict, log) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free port; returns once the page answers (or raises)."""
    port = _free_port()
    env = dict(env, GRADIO_SERVER_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited: {Path(log.name).read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url + "/", timeout=5) as r:
                if r.status == 200:
                    time.sleep(1)  # Gradio's own start-up check runs now; see it pass
                    if proc.poll() is None:
                        return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("app.py did not answer within 180 s")


@pytest.fixture(scope="session")
def app_url(tmp_path_factory) -> str:
    user = tmp_path_factory.mktemp("user-ckpt")
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", LATENT_LAB_USER_CKPT=str(user))
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")  # noqa: SIM115
    # On a loaded machine Gradio's start-up self-check of localhost can time out and stop the
    # server ("When localhost is not accessible ..."): try again, twice at most.
    for attempt in range(3):
        try:
            proc, url = _start(env, log)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs it with apt-get")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Page:
    """A page at one viewport that records console errors and takes named screenshots."""

    def __init__(self, browser, url: str, size: str):
        w, h = VIEWPORTS[size]
        self.size = size
        self.context = browser.new_context(viewport={"width": w, "height": h})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(60_000)
        self.page.goto(url)
        self.page.wait_for_selector("gradio-app", state="attached")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}-{self.size}.png"
        self.page.screenshot(path=str(path))
        return path

    def shots_everywhere(self, name: str, main: str) -> list[Path]:
        """Screenshots at every viewport of the page as it is (the same page, resized), with
        ``main`` scrolled into view; at each size no label or caption may cover a picture.
        Ends at the page's own size."""
        paths, own = [], self.size
        for size in (*(s for s in VIEWPORTS if s != own), own):
            w, h = VIEWPORTS[size]
            self.page.set_viewport_size({"width": w, "height": h})
            self.size = size
            self.page.locator(main).first.scroll_into_view_if_needed()
            self.page.wait_for_timeout(400)
            covered = covered_pictures(self.page)
            assert not covered, f"{name} at {size}: badges over pictures: {covered}"
            wide = self.page.evaluate("() => document.documentElement.scrollWidth")
            assert wide <= w, f"{name} at {size}: the page scrolls sideways ({wide} px)"
            cut = self.page.evaluate(CUT_CODE_TABLES)
            assert not cut, f"{name} at {size}: code tables scroll sideways: {cut}"
            paths.append(self.shot(name))
        return paths

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser, app_url):
    pages: list[Page] = []

    def _open(size: str = "1280x720", query: str = "") -> Page:
        pages.append(Page(browser, app_url + "/" + query, size))
        return pages[-1]

    yield _open
    errors = [e for p in pages for e in p.errors]
    for p in pages:
        p.close()
    assert not errors, f"browser console errors: {errors[:5]}"


def in_viewport(page, selector: str) -> bool:
    """True when the element's box lies inside the visible viewport."""
    box = page.locator(selector).first.bounding_box()
    vp = page.viewport_size
    return (box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= vp["height"]
            and box["x"] >= 0 and box["x"] + min(box["width"], 40) <= vp["width"])


def overlaps(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return False
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


COVERED_JS = """() => {
  const shown = e => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.checkVisibility({visibilityProperty: true}); };
  // the part of an img that shows the picture (object-fit: contain letterboxes it)
  const painted = e => { const r = e.getBoundingClientRect();
    if (e.tagName !== 'IMG' || !e.naturalWidth || getComputedStyle(e).objectFit !== 'contain')
      return r;
    const s = Math.min(r.width / e.naturalWidth, r.height / e.naturalHeight);
    const w = e.naturalWidth * s, h = e.naturalHeight * s;
    const left = r.left + (r.width - w) / 2, top = r.top + (r.height - h) / 2;
    return {left, top, right: left + w, bottom: top + h}; };
  const pics = [...document.querySelectorAll('img, canvas')].filter(shown).map(painted);
  const out = [];
  for (const b of document.querySelectorAll('[data-testid="block-label"], .caption-label')) {
    if (!shown(b)) continue;
    const r = b.getBoundingClientRect();
    for (const q of pics) {
      const l = Math.max(r.left, q.left), t = Math.max(r.top, q.top);
      const ix = Math.min(r.right, q.right) - l, iy = Math.min(r.bottom, q.bottom) - t;
      if (ix <= 2 || iy <= 2) continue;
      // drawn on top there (a caption scrolled out of its gallery is clipped, not drawn)
      const hit = document.elementFromPoint(l + ix / 2, t + iy / 2);
      if (hit && b.contains(hit)) { out.push(b.textContent.trim().slice(0, 40)); break; }
    }
  }
  return out; }"""


def covered_pictures(page) -> list[str]:
    """The texts of visible block-label badges and gallery captions that lie over a visible
    picture (an img or a canvas); empty when none does."""
    return page.evaluate(COVERED_JS)


def open_tab(open_page, tab: str, ready: str, size: str = "1280x720") -> Page:
    """A page opened on ``tab`` by its deep link, whose first result (the selector ``ready``)
    is there and idle. One navigation only: leaving a page while its load steps run aborts
    their event stream, which the browser logs as an error."""
    p = open_page(size, f"?tab={tab}")
    p.page.wait_for_selector(ready)
    wait_idle(p.page)
    return p


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Until no component shows Gradio's progress overlay (queued or running) any more."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => ![...document.querySelectorAll('[data-testid="status-tracker"]')]
             .some(e => !e.classList.contains('hide') && e.checkVisibility()
                        && e.textContent.trim().length > 0)""", timeout=timeout_ms)
