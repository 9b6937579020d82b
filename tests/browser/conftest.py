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
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"1440x900": (1440, 900), "1280x720": (1280, 720), "390x844": (390, 844)}
SHOTS = Path(os.environ.get("LATENT_LAB_SCREENSHOTS", "/tmp/latentlab-screenshots"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory) -> str:
    port = _free_port()
    user = tmp_path_factory.mktemp("user-ckpt")
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               LATENT_LAB_USER_CKPT=str(user))
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited: {Path(log.name).read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app.py did not listen within 120 s")
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
