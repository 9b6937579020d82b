"""Two-level code grids in a real browser: a top edit redraws the bottom, a bottom edit only
changes the picture, and the "same top" strip follows the top."""

from __future__ import annotations

from .conftest import open_tab, wait_idle

DECODED, STRIP = "#ll-levels-decoded img", "#ll-levels-same-top img"


def _grid(page, table: str, size: int) -> list[list[str]]:
    cell = '{} [data-testid="cell-{}-{}"]'
    # a cell's text is its value, then the cell menu's "⋮" on the next line
    return [[page.locator(cell.format(table, r, c)).inner_text().split("\n")[0].strip()
             for c in range(size)] for r in range(size)]


def _src(page, selector: str) -> str:
    return page.locator(selector).first.get_attribute("src") or ""


def _edit(page, table: str, row: int, col: int, value: str) -> None:
    page.locator(f'{table} [data-testid="cell-{row}-{col}"]').dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def _wait_src_changed(page, selector: str, old: str) -> str:
    page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel);"
                           " return e && e.src && e.src !== old; }", arg=[selector, old])
    wait_idle(page)
    return _src(page, selector)


def _wait_table_changed(page, table: str, old: list[list[str]]) -> None:
    flat = [v for row in old for v in row]
    page.wait_for_function(
        "([sel, old]) => { const cells = [...document.querySelectorAll(sel + ' [data-testid^=\"cell-\"]')]"
        ".map(t => t.innerText.trim()); return cells.length === old.length &&"
        " JSON.stringify(cells) !== JSON.stringify(old); }", arg=[table, flat])


def test_a_top_edit_redraws_the_bottom_and_a_bottom_edit_does_not_touch_the_top(open_page):
    p = open_tab(open_page, "codegrid", "#ll-code-decoded img")
    page = p.page
    page.locator("#ll-top-table").scroll_into_view_if_needed()
    page.wait_for_selector(DECODED)     # lazy images load once scrolled to
    page.locator(STRIP).scroll_into_view_if_needed()
    page.wait_for_selector(STRIP)
    page.locator("#ll-top-table").scroll_into_view_if_needed()
    top, bottom = _grid(page, "#ll-top-table", 2), _grid(page, "#ll-bottom-table", 7)
    image, strip = _src(page, DECODED), _src(page, STRIP)
    assert "p(top)" in page.locator("#ll-levels-info").inner_text()

    # the top's first code -> another one: a new bottom drawn from p(bottom | top)
    new_code = "1" if top[0][0] != "1" else "2"
    _edit(page, "#ll-top-table", 0, 0, new_code)
    _wait_table_changed(page, "#ll-bottom-table", bottom)
    image = _wait_src_changed(page, DECODED, image)
    _wait_src_changed(page, STRIP, strip)
    redrawn = _grid(page, "#ll-bottom-table", 7)
    assert _grid(page, "#ll-top-table", 2)[0][0] == new_code and redrawn != bottom
    p.shot("levels-top-edit")

    # one bottom cell: the picture changes, the top stays, no bottom redraw
    cell = redrawn[3][3]
    _edit(page, "#ll-bottom-table", 3, 3, "0" if cell != "0" else "1")
    image = _wait_src_changed(page, DECODED, image)
    after = _grid(page, "#ll-bottom-table", 7)
    assert _grid(page, "#ll-top-table", 2)[0][0] == new_code
    assert sum(a != b for ra, rb in zip(after, redrawn) for a, b in zip(ra, rb)) == 1

    # another seed, then "Redraw bottom": a different bottom for the same top
    seed = page.locator("#ll-levels-seed input")
    seed.fill("7")
    seed.press("Enter")
    page.get_by_role("button", name="Redraw bottom from p(bottom | top)").click()
    _wait_src_changed(page, DECODED, image)
    assert _grid(page, "#ll-bottom-table", 7) != after
    p.shots_everywhere("levels", "#ll-levels-decoded")
