"""Reconstruct in a real browser: pick an example, upload a file, draw a stroke."""

from __future__ import annotations

from pathlib import Path

from .conftest import REPO, in_viewport, wait_idle

GALLERY = "#ll-rec-gallery img"


def _srcs(page) -> list[str]:
    return page.locator(GALLERY).evaluate_all("es => es.map(e => e.src)")


def _wait_new(page, before: list[str]) -> list[str]:
    page.wait_for_function("([sel, old]) => { const s = [...document.querySelectorAll(sel)]"
                           ".map(e => e.src); return s.length > 0 && s.every(x => x) "
                           "&& s.join() !== old.join(); }", arg=[GALLERY, before])
    wait_idle(page)
    return _srcs(page)


def test_pick_upload_and_draw_reconstruct(open_page):
    p = open_page("1280x720")
    page = p.page
    page.wait_for_function(f"() => document.querySelectorAll('{GALLERY}').length >= 2")
    wait_idle(page)
    first = _srcs(page)
    assert all(first)
    assert page.get_by_text("ELBO = −rec − KL").first.is_visible()  # the table's text
    # the whole ELBO table, its "meaning" column included, lies inside its block on a desktop
    edges = page.evaluate("""() => { const b = document.querySelector('#ll-elbo-table');
        const cells = [...b.querySelectorAll('td')].filter((c) => c.checkVisibility());
        return [b.getBoundingClientRect().right,
                Math.max(...cells.map((c) => c.getBoundingClientRect().right))]; }""")
    assert edges[1] <= edges[0] + 1, f"the ELBO table ends at {edges[1]}, its block at {edges[0]}"

    # pick an example (the 4th thumbnail) -> a new reconstruction, in view
    page.locator(".ll-examples:visible button.thumbnail-item").nth(3).click()
    picked = _wait_new(page, first)
    assert in_viewport(page, "#ll-rec-gallery")
    p.shots_everywhere("reconstruct", "#ll-rec-gallery")

    # upload a PNG from the shipped examples
    page.get_by_role("tab", name="Upload").first.click()
    png = sorted((REPO / "assets/examples/mnist").glob("*.png"))[10]
    page.locator(".ll-upload:visible input[type=file]").set_input_files(str(Path(png)))
    uploaded = _wait_new(page, picked)

    # draw one stroke: the canvas takes it at once (no brush click first) and is in view
    page.get_by_role("tab", name="Draw").first.click()
    canvas = page.locator(".ll-sketch:visible canvas").last
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 720
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x + 5 * (i % 3), y + i * box["height"] * 0.03)
    page.mouse.up()
    _wait_new(page, uploaded)
    p.shots_everywhere("reconstruct-draw", ".ll-sketch:visible")
