"""Interpolate in a real browser: VAEs and the VQ-VAE, the strip and the density chart
(the code prior on its own y-axis)."""

from __future__ import annotations

from .conftest import in_viewport, open_tab, wait_idle


def test_interpolate(open_page):
    p = open_tab(open_page, "interpolate", "#ll-strip img")
    page = p.page
    before = page.locator("#ll-strip img").get_attribute("src")
    # add the VQ-VAE: its log p_lambda(codes) goes on a second y-axis
    picker = page.get_by_label("Models").locator("visible=true").first
    picker.click()
    page.get_by_role("option", name="mnist-vqvae").first.click()
    page.keyboard.press("Escape")
    page.get_by_label("Steps").locator("visible=true").first.fill("8")
    page.keyboard.press("Enter")
    button = page.get_by_role("button", name="Interpolate", exact=True)
    button.scroll_into_view_if_needed()
    button.click()
    page.wait_for_function("old => { const e = document.querySelector('#ll-strip img');"
                           " return e && e.src && e.src !== old; }", arg=before)
    wait_idle(page)
    assert in_viewport(page, "#ll-strip")
    page.wait_for_selector("#ll-density .js-plotly-plot")
    page.wait_for_function("() => document.querySelectorAll('#ll-density .y2tick').length > 0")
    assert page.locator("#ll-density .legendtext", has_text="z_e").count() == 1
    p.shots_everywhere("interpolate", "#ll-strip")
