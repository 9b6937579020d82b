"""Latent space in a real browser: a click on the plane decodes a digit, inside the viewport."""

from __future__ import annotations

from .conftest import in_viewport, wait_idle


def test_click_the_plane_shows_the_digit_in_view(open_page):
    p = open_page("1280x720", "?tab=latent")
    page = p.page
    plane = page.locator(".ll-plane img").first
    plane.wait_for()
    wait_idle(page)
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.45)
    page.wait_for_selector(".ll-decoded img", timeout=60_000)
    wait_idle(page)
    assert page.locator(".ll-decoded img").first.get_attribute("src")
    assert in_viewport(page, ".ll-decoded img"), "the decoded digit is below the fold"
    p.shots_everywhere("latent", ".ll-decoded img")
