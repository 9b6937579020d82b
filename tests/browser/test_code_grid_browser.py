"""Code grid in a real browser: edit a cell, regenerate a region; one message per bad edit."""

from __future__ import annotations

from .conftest import in_viewport, open_tab, wait_idle


def _decoded(page) -> str:
    return page.locator("#ll-code-decoded img").get_attribute("src") or ""


def _wait_changed(page, old: str) -> str:
    page.wait_for_function("old => { const e = document.querySelector('#ll-code-decoded img');"
                           " return e && e.src && e.src !== old; }", arg=old)
    wait_idle(page)
    return _decoded(page)


def _edit(page, row: int, col: int, value: str) -> None:
    cell = page.locator(f'#ll-code-table [data-testid="cell-{row}-{col}"]')
    cell.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def test_edit_a_cell_and_regenerate(open_page):
    p = open_tab(open_page, "codegrid", "#ll-code-decoded img")
    page = p.page
    first = _decoded(page)
    _edit(page, 3, 3, "0")
    edited = _wait_changed(page, first)
    assert in_viewport(page, "#ll-code-decoded") and in_viewport(page, "#ll-code-table")
    assert page.get_by_text("bits").first.is_visible()

    page.get_by_label("Selected cells").locator("visible=true").first.fill("0-2,*")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Regenerate selected cells (learned prior)").click()
    _wait_changed(page, edited)
    p.shots_everywhere("codegrid", "#ll-code-decoded")

    # a bad edit: one error message, not two
    _edit(page, 0, 0, "999")
    page.wait_for_selector(".toast-body", timeout=30_000)
    page.wait_for_timeout(2500)
    # Gradio's table fired change twice per edit: one toast then said "(2)" and held the
    # message twice
    texts = page.locator(".toast-body:visible").all_inner_texts()
    assert sum(t.count("outside [0, ") for t in texts) == 1, texts
    p.errors[:] = [e for e in p.errors if "outside" not in e]  # the expected error
