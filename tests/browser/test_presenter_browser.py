"""Presenter mode and links in a real browser at a projector's 1280x720.

``?presenter=1`` gives large type and a one-line header without horizontal scrolling on any
tab; a link's settings land in the widgets; "copy link" writes the widgets' current values
into a URL that opens the same view again.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SIZES = """() => {
  const px = (e) => parseFloat(getComputedStyle(e).fontSize);
  const shown = (s) => [...document.querySelectorAll(s)].filter((e) => e.offsetParent !== null);
  return {
    body: px(document.querySelector('.gradio-container')),
    tabs: Math.min(...shown('[role=tab]').map(px)),
    labels: Math.min(...shown('[data-testid=block-info]').map(px)),
    prose: Math.min(...shown('.prose p').map(px)),
    width: document.documentElement.scrollWidth,
  };
}"""
TABS = ["Sample", "Interpolate", "Code grid", "Latent space", "Lecture", "Reconstruct"]


def _visible(page, selector: str):
    return page.locator(selector).locator("visible=true")


def _wait_presenter(page) -> None:
    page.wait_for_selector("body.ll-presenter", state="attached")
    page.wait_for_function("() => document.querySelector('#ll-presenter-toggle input')?.checked")


def _ready(page) -> None:
    """The page load finished: its last step drew Reconstruct's example."""
    _visible(page, ".gallery-pixelated img").first.wait_for()


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_function(f"""() => [...document.querySelectorAll('[role=tab][aria-selected=true]')]
        .some((e) => e.innerText.trim() === {name!r})""")


def test_presenter_mode_has_large_type_and_a_compact_header(open_page):
    p = open_page("1280x720", "?presenter=1")
    page = p.page
    _wait_presenter(page)
    _ready(page)
    sizes = page.evaluate(SIZES)
    assert sizes["body"] >= 20 and sizes["tabs"] >= 20 and sizes["prose"] >= 20, sizes
    assert sizes["labels"] >= 18, sizes
    top = page.locator("#ll-top").bounding_box()
    assert top["height"] <= 90, top                                # title and tools on one line
    assert not page.locator("#ll-header p").first.is_visible()
    assert page.get_by_role("tab", name="Reconstruct").bounding_box()["y"] < 200
    p.shot("presenter-reconstruct")
    for name in TABS:
        _tab(page, name)
        page.wait_for_timeout(1500)                                 # the tab's first picture
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"{name}: the page scrolls sideways ({width} px)"
        p.shot(f"presenter-{name.lower().replace(' ', '-')}")


def test_presenter_toggle_works_in_the_browser(open_page):
    """The checkbox switches presenter mode in the browser; a dark theme steps aside (the
    presenter page is light and high-contrast) and comes back afterwards."""
    p = open_page("1280x720", "?__theme=dark")
    page = p.page
    page.locator("#ll-header h1").wait_for()
    page.wait_for_selector("body.dark", state="attached")
    assert page.evaluate(SIZES)["body"] < 20
    assert page.locator("#ll-header p").first.is_visible()
    page.locator("#ll-presenter-toggle input").check()
    page.wait_for_selector("body.ll-presenter", state="attached")
    assert page.evaluate(SIZES)["body"] >= 20
    assert page.evaluate("document.body.classList.contains('dark')") is False
    assert not page.locator("#ll-header p").first.is_visible()
    p.shot("presenter-from-dark")
    page.locator("#ll-presenter-toggle input").uncheck()
    page.wait_for_function("() => !document.body.classList.contains('ll-presenter')")
    assert page.evaluate("document.body.classList.contains('dark')") is True
    p.shot("presenter-off")


def test_a_link_opens_its_view(open_page):
    query = ("?tab=sample&dataset=fashion&seed=7&n=16&temperature=0.5&source=prior"
             "&models=fashion-vae-z16&k=oops")
    p = open_page("1280x720", query)
    page = p.page
    page.wait_for_function("() => [...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                           ".some((e) => e.innerText.trim() === 'Sample')")
    page.wait_for_function("() => [...document.querySelectorAll('input[type=radio]')]"
                           ".some((e) => e.value === 'fashion' && e.checked)")
    assert _visible(page, "input[type=radio][value='16']").first.is_checked()
    assert page.get_by_label("Seed").locator("visible=true").first.input_value() == "7"
    assert page.get_by_label("Temperature T").locator("visible=true").first.input_value() == "0.5"
    assert "fashion-vae-z16" in page.locator(".gradio-container").inner_text()
    _visible(page, ".gallery-pixelated img").first.wait_for()
    p.shot("link-sample")


def test_copy_link_carries_the_current_values_and_opens_them_again(open_page):
    p = open_page("1280x720", "")
    page = p.page
    _ready(page)
    _tab(page, "Sample")
    seed = page.get_by_label("Seed").locator("visible=true").first
    seed.fill("42")
    seed.press("Tab")
    _visible(page, "input[type=radio][value='36']").first.check()
    page.locator("#ll-copy-link").click()
    page.wait_for_function("() => document.querySelector('#ll-link textarea, #ll-link input')"
                           "?.value.startsWith('http')")
    url = page.locator("#ll-link textarea, #ll-link input").first.input_value()
    p.shot("copy-link")
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["tab"] == "sample" and params["seed"] == "42" and params["n"] == "36"
    assert params["dataset"] == "mnist" and params["temperature"] == "1"
    assert params["models"].split(",") == ["mnist-vae-z16", "mnist-flow-z16"]
    again = open_page("1280x720", "?" + urlsplit(url).query).page
    again.wait_for_function("() => [...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                            ".some((e) => e.innerText.trim() === 'Sample')")
    again.wait_for_function("() => [...document.querySelectorAll('input[type=radio]')]"
                            ".some((e) => e.value === '36' && e.checked)")
    assert again.get_by_label("Seed").locator("visible=true").first.input_value() == "42"


def test_a_lecture_link_opens_its_panel_and_copies_back(open_page):
    p = open_page("1280x720", "?tab=lecture&panel=gumbel&seed=5")
    page = p.page
    label = page.locator("button.label-wrap", has_text="Gumbel-max and Gumbel-softmax").first
    page.wait_for_function("(e) => e.classList.contains('open')", arg=label.element_handle())
    block = label.locator("xpath=..")
    page.wait_for_function("(e) => [...e.querySelectorAll('input[type=number]')]"
                           ".some((i) => i.value === '5')", arg=block.element_handle())
    page.wait_for_function("() => { const r = document.querySelector('#ll-panel-gumbel')"
                           ".getBoundingClientRect(); return r.top >= 0 && r.top < 100; }")
    page.locator("#ll-panel-gumbel .js-plotly-plot").first.wait_for()
    p.shot("link-lecture")                                       # scrolled to the panel
    page.locator("#ll-copy-link").click()
    page.wait_for_function("() => document.querySelector('#ll-link textarea, #ll-link input')"
                           "?.value.startsWith('http')")
    url = page.locator("#ll-link textarea, #ll-link input").first.input_value()
    assert {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()} == {
        "tab": "lecture", "panel": "gumbel", "seed": "5"}
