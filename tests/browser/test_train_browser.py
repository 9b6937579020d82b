"""Train in a real browser: a tiny run starts (real data) and Stop stops it."""

from __future__ import annotations

from .conftest import in_viewport


def test_start_a_tiny_run_and_stop_it(open_page):
    p = open_page("1280x720", "?tab=train")
    page = p.page
    status = page.locator("#ll-train-status")
    status.wait_for()
    page.get_by_label("Epochs").locator("visible=true").first.fill("2")
    page.keyboard.press("Enter")
    start = page.locator("#ll-train-start")
    start.scroll_into_view_if_needed()
    start.click()
    page.wait_for_function("() => /Status: (training|loading|starting|evaluating)|Started/"
                           ".test(document.querySelector('#ll-train-status').innerText)",
                           timeout=60_000)
    assert in_viewport(page, "#ll-train-status")
    stop = page.locator("#ll-train-stop")
    page.wait_for_function("() => !document.querySelector('#ll-train-stop').disabled",
                           timeout=60_000)
    page.wait_for_function("() => /step [1-9]/.test(document.body.innerText)", timeout=90_000)
    p.shots_everywhere("train", "#ll-train-status")
    stop.click()
    page.wait_for_function("() => /[Ss]topp/.test(document.querySelector('#ll-train-status')"
                           ".innerText)", timeout=90_000)
    page.wait_for_function("() => document.querySelector('#ll-train-stop').disabled",
                           timeout=90_000)
