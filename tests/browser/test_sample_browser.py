"""Sample in a real browser: three models side by side, every grid whole and unlabelled-over."""

from __future__ import annotations

from .conftest import in_viewport, open_tab, wait_idle


def test_sample_three_models(open_page):
    p = open_tab(open_page, "sample", "#ll-samples img")
    page = p.page
    # a third model (the VQ-VAE) from the picker
    picker = page.get_by_label("Models (side by side)").locator("visible=true").first
    picker.click()
    page.get_by_role("option", name="mnist-vqvae").first.click()
    page.keyboard.press("Escape")
    button = page.get_by_role("button", name="Sample", exact=True)
    button.scroll_into_view_if_needed()
    button.click()
    page.wait_for_function("() => document.querySelectorAll('#ll-samples img').length >= 3")
    wait_idle(page)
    imgs = page.locator("#ll-samples img")
    assert imgs.count() == 3 and all(imgs.nth(i).get_attribute("src") for i in range(3))
    assert in_viewport(page, "#ll-samples")
    # no grid is cut off inside the gallery: each image lies inside the gallery's box
    gallery = page.locator("#ll-samples").bounding_box()
    for i in range(3):
        b = imgs.nth(i).bounding_box()
        assert b["y"] + b["height"] <= gallery["y"] + gallery["height"] + 1, f"grid {i} cut off"
    p.shots_everywhere("sample", "#ll-samples")
