"""The Gradio app: imports and builds without launching; launched, every endpoint answers
through gradio_client (the README's example included) and bad input gets a clear message."""

import logging
import re
import socket
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from app_fixtures import make_tiny_checkpoints
from PIL import Image

from latentlab.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "assets" / "examples" / "mnist" / "06-3.png"
OWN_ENDPOINTS = {
    "/prepare", "/reconstruct", "/sample", "/interpolate", "/code_encode", "/code_decode",
    "/code_paint", "/code_regenerate", "/code_sample_uniform", "/code_sample_learned",
    "/code_atlas", "/latent_space", "/latent_space_b", "/latent_decode", "/umap_recompute",
    "/list_models", "/levels_decode", "/levels_sample", "/levels_redraw_bottom",
    "/levels_same_top", "/levels_encode",
}
PUBLIC_SHAPES = {  # api name -> (inputs, outputs)
    "prepare": (1, 1), "reconstruct": (5, 7), "sample": (6, 2), "interpolate": (7, 5),
    "code_encode": (2, 1), "code_decode": (3, 3), "code_paint": (4, 1), "code_regenerate": (5, 1),
    "code_sample_uniform": (3, 1), "code_sample_learned": (3, 1), "code_atlas": (3, 2),
    "latent_space": (4, 6), "latent_space_b": (4, 6), "latent_decode": (6, 3),
    "umap_recompute": (2, 1), "list_models": (0, 2), "levels_decode": (3, 5),
    "levels_sample": (3, 2), "levels_redraw_bottom": (4, 1), "levels_same_top": (4, 1),
    "levels_encode": (2, 2),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_module_builds_without_launching():
    import app

    assert isinstance(app.demo, gr.Blocks)
    assert not getattr(app.demo, "is_running", False)                # nothing started
    names = [fn.api_name for fn in app.demo.fns.values()]
    assert all(names), "every event needs an explicit api_name"
    assert OWN_ENDPOINTS <= {"/" + n for n in names}


def test_api_names_and_input_counts_are_stable():
    """The public API (the README's calls and everything gradio_client users may script)."""
    import app

    shape = {fn.api_name: (len(fn.inputs), len(fn.outputs)) for fn in app.demo.fns.values()}
    assert {name: shape[name] for name in PUBLIC_SHAPES} == PUBLIC_SHAPES


def test_heavy_events_take_turns_and_the_code_prior_samples_in_batches():
    """Long actions share one worker (a class clicking them leaves a core to quick ones), a
    class's actions share two (one per core); the learned-prior "New grid" merges waiting
    requests into one batch."""
    import app

    fns = {fn.api_name: fn for fn in app.demo.fns.values()}
    for name in app.HEAVY_EVENTS:
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == (app.HEAVY_ID, 1)
    for name in app.CLASS_EVENTS:
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == (app.CLASS_ID, 2)
    assert fns["prepare"].concurrency_id not in (app.CLASS_ID, app.HEAVY_ID)  # never waits
    learned = fns["code_sample_learned"]
    assert learned.batch and learned.max_batch_size >= 8
    assert app.demo._queue.default_concurrency_limit == 2


def test_batched_endpoint_answers_each_caller_as_alone(client):
    """Concurrent /code_sample_learned calls (batched on the server) get what a single call
    gets for the same seed; a lone bad request still gets its message."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    url = client.src
    seeds = [5, 6, 7, 5, 8, 9]
    with ThreadPoolExecutor(len(seeds)) as pool:
        together = list(pool.map(lambda s: Client(url, verbose=False).predict(
            "mnist-vqvae", 1.0, s, api_name="/code_sample_learned")["data"], seeds))
    alone = [client.predict("mnist-vqvae", 1.0, s, api_name="/code_sample_learned")["data"]
             for s in seeds]
    assert together == alone and together[0] == together[3] and together[0] != together[1]
    with pytest.raises(Exception, match="no checkpoint named 'nope'"):
        client.predict("nope", 1.0, 0, api_name="/code_sample_learned")


def test_batched_adapter_keeps_a_bad_request_from_failing_the_others(reg):
    from latentlab.ui.code_grid import Adapters
    from latentlab.ui.common import friendly
    from latentlab.views import code_grid as cg

    (grids,) = Adapters(reg).on_learned(["mnist-vqvae", "nope", "mnist-vqvae"], [1.0] * 3,
                                        [1, 1, 2])
    assert grids[0] == cg.sample(reg, "mnist-vqvae", "learned", 1.0, 1)
    assert grids[1] == gr.skip() and grids[2] == cg.sample(reg, "mnist-vqvae", "learned", 1.0, 2)
    with pytest.raises(gr.Error, match="no checkpoint named 'nope'"):     # alone: the message
        friendly(Adapters(reg).on_learned)(["nope"], [1.0], [1])


def test_input_adapters_show_user_errors_and_log_one_line(caplog):
    from latentlab.ui import common
    from latentlab.views import examples

    canvas = np.zeros((300, 300, 4), np.uint8)
    canvas[60:240, 140:165] = (0, 0, 0, 255)                         # one black stroke
    assert common.from_sketch({"background": None, "layers": [], "composite": canvas}).shape \
        == (224, 224)
    empty = common.from_sketch({"background": None, "layers": [], "composite": canvas * 0})
    assert not isinstance(empty, np.ndarray)                          # a cleared canvas: no change
    picked = common.from_example("mnist", gr.SelectData(None, {"index": 6, "value": None}))
    assert np.array_equal(picked, examples.load_example("mnist", 6))
    with caplog.at_level(logging.INFO, logger="latentlab"), pytest.raises(gr.Error, match="between"):
        common.from_example("mnist", gr.SelectData(None, {"index": 99, "value": None}))
    records = [r for r in caplog.records if r.name == "latentlab"]
    assert len(records) == 1 and "between" in records[0].getMessage()
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()


def test_only_user_errors_become_messages():
    from latentlab.ui.common import friendly

    @friendly
    def bug() -> None:
        raise KeyError("a bug, not the user's fault")

    with pytest.raises(KeyError):
        bug()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The app on tiny checkpoints, launched in-process on a free port."""
    from gradio_client import Client

    import app

    folder = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoints(folder, evaluate=False)
    demo = app.build_demo(ModelRegistry(folder, assets=None))
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_kwargs())
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def _image_file(tmp_path: Path, name: str, img: Image.Image) -> str:
    path = tmp_path / name
    img.save(path)
    return str(path)


def test_every_endpoint_through_gradio_client(client, tmp_path):
    from gradio_client import handle_file

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert OWN_ENDPOINTS <= set(api)
    img = handle_file(str(EXAMPLE))
    two_d = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae"]

    seen = client.predict(img, api_name="/prepare")
    assert np.asarray(Image.open(seen)).shape[:2] == (224, 224)
    gallery, table, post, codes, note = client.predict(
        handle_file(seen), two_d, 100, 0, "threshold", api_name="/reconstruct")
    assert len(gallery) == 4 and len(table["data"]) >= 5 and post is not None
    assert "mnist-vae-z2" in table["headers"]
    assert codes["visible"] and codes["value"] is not None and note == ""   # the VQ grid

    grids, note = client.predict(["mnist-vae-z4", "mnist-flow-z4", "mnist-vqvae"], "prior", 16,
                                 1.0, True, 0, api_name="/sample")
    assert len(grids) == 3
    grids, note = client.predict(["mnist-flow-z2", "mnist-vqvae"], "q_agg", 16, 1.0, False, 0,
                                 api_name="/sample")
    assert len(grids) == 1 and "does not apply" in note

    strips, fig, gif, gif_file, note = client.predict(
        img, img, two_d, 8, "spherical", True, "threshold", api_name="/interpolate")
    assert Image.open(strips).size[1] > 4 * 28 and "base" in note    # z and z* for the flow
    assert Path(gif).suffix == Path(gif_file).suffix == ".gif" and fig is not None

    grid = client.predict(img, "mnist-vqvae", api_name="/code_encode")
    grid_value = {"headers": [str(c) for c in range(7)], "data": grid["data"]}
    decoded, cmap, info = client.predict(grid_value, "mnist-vqvae", "1,1", api_name="/code_decode")
    assert "bits" in info and Image.open(decoded).size == (224, 224)
    assert Image.open(cmap).size[0] == Image.open(cmap).size[1] > 7 * 30
    painted = client.predict(grid_value, "mnist-vqvae", "0,*", 3, api_name="/code_paint")
    assert painted["data"][0] == [3] * 7
    regen = client.predict(grid_value, "mnist-vqvae", "2-3,2-3", 1.0, 0, api_name="/code_regenerate")
    assert len(regen["data"]) == 7
    for prior in ("uniform", "learned"):
        new = client.predict("mnist-vqvae", 1.0, 1, api_name=f"/code_sample_{prior}")
        assert all(0 <= c < 16 for row in new["data"] for c in row)
    atlas, _ = client.predict("mnist-vqvae", grid_value, img, api_name="/code_atlas")
    assert atlas is not None

    for name in ("mnist-vae-z2", "mnist-flow-z4", "mnist-vqvae"):
        plane, _, stats, fig1, fig2, note = client.predict(name, "auto", 100, 0,
                                                           api_name="/latent_space")
        assert len(stats["data"]) >= 3 and fig1 is not None and note
        assert (fig2["visible"] and plane["visible"] is False) if name == "mnist-vqvae" \
            else plane["visible"]
    out = client.predict("(none)", "auto", 100, 0, api_name="/latent_space_b")
    assert len(out) == 6
    decoded, plane, note = client.predict("mnist-flow-z2", "auto", 0.5, -1.0, 100, 0,
                                          api_name="/latent_decode")
    assert "z = (0.50, -1.00)" in note and Image.open(decoded).size == (168, 168)
    assert Image.open(plane).size[0] > 300
    status, models = client.predict(api_name="/list_models")
    assert "mnist-broken" in status and len(models["data"]) >= 6


def test_two_level_endpoints_through_gradio_client(client):
    """The hierarchical VQ-VAE's section: sample a pair, decode it, redraw the bottom for its
    top, eight bottoms for one top, encode an image."""
    from gradio_client import handle_file

    def table(rows: list) -> dict:
        return {"headers": [str(c) for c in range(len(rows))], "data": rows}

    top, bottom = client.predict("mnist-vqvae2", 1.0, 0, api_name="/levels_sample")
    assert len(top["data"]) == 2 and len(bottom["data"]) == 7
    assert all(0 <= c < 8 for row in top["data"] for c in row)
    decoded, coarse, top_map, bottom_map, info = client.predict(
        table(top["data"]), table(bottom["data"]), "mnist-vqvae2", api_name="/levels_decode")
    assert Image.open(decoded).size == Image.open(coarse).size == (224, 224)
    assert Image.open(top_map).size[0] < Image.open(bottom_map).size[0] + 40   # both ~ 250 px
    assert "p(top)" in info and "p(bottom | top)" in info
    new = client.predict("mnist-vqvae2", table(top["data"]), 1.0, 5,
                         api_name="/levels_redraw_bottom")
    assert len(new["data"]) == 7 and new["data"] != bottom["data"]
    strip = client.predict("mnist-vqvae2", table(top["data"]), 1.0, 0, api_name="/levels_same_top")
    assert Image.open(strip).size[0] > 8 * 28 * 3
    top2, bottom2 = client.predict(handle_file(str(EXAMPLE)), "mnist-vqvae2",
                                   api_name="/levels_encode")
    assert len(top2["data"]) == 2 and len(bottom2["data"]) == 7


@pytest.mark.parametrize("endpoint, args, message", [
    ("/reconstruct", ("IMG", ["mnist-vae-z2"], 0, 0, "threshold"), "minimum|between"),
    ("/reconstruct", ("IMG", ["mnist-vae-z2"], 10, -5, "threshold"), "minimum|between"),
    ("/reconstruct", ("IMG", [], 100, 0, "threshold"), "at least one"),
    ("/reconstruct", ("IMG", ["nope"], 100, 0, "threshold"), "no checkpoint named 'nope'"),
    ("/sample", (["mnist-vae-z2"], "prior", 16, 9.0, False, 0), "maximum|temperature"),
    ("/sample", (["mnist-vqvae"], "q_agg", 16, 1.0, False, 0), "does not apply"),
    ("/interpolate", ("IMG", "IMG", ["mnist-vae-z2"], 99, "linear", True, "threshold"),
     "maximum|steps"),
    ("/code_decode", ({"headers": ["a"], "data": [[1, 2]]}, "mnist-vqvae", ""), "7 rows"),
    ("/code_decode", ({"headers": [str(c) for c in range(7)], "data": [[99] * 7] * 7},
                      "mnist-vqvae", ""), r"outside \[0, 16\)"),
    ("/code_paint", ({"headers": [str(c) for c in range(7)], "data": [[1] * 7] * 7},
                     "mnist-vqvae", "9,9", 1), "between 0 and 6"),
    ("/latent_decode", ("mnist-vae-z2", "auto", None, 1.0, 100, 0), "coordinates"),
    ("/levels_decode", ({"headers": ["0", "1"], "data": [[0, 99], [0, 0]]},
                        {"headers": [str(c) for c in range(7)], "data": [[0] * 7] * 7},
                        "mnist-vqvae2"), r"top grid: .*outside \[0, 8\)"),
    ("/levels_redraw_bottom", ("mnist-vqvae2", {"headers": ["0", "1"], "data": [[0, 0], [0, 0]]},
                               99.0, 0), "maximum|temperature"),
    ("/levels_sample", ("mnist-vqvae", 1.0, 0), "needs one of: vqvae2"),
    ("/umap_recompute", ("mnist-vae-z2", "(none)"), "more than 2 latent dims"),
])
def test_bad_input_gives_a_clear_message_and_the_app_stays_up(client, endpoint, args, message):
    from gradio_client import handle_file

    args = tuple(handle_file(str(EXAMPLE)) if a == "IMG" else a for a in args)
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name=endpoint)
    assert client.predict(handle_file(str(EXAMPLE)), api_name="/prepare")     # still serving


BAD_UPLOADS = {
    "text": (lambda p: p.write_text("not an image"), "not an image this app can read"),
    "truncated": (lambda p: p.write_bytes(EXAMPLE.read_bytes()[:60]), "corrupt or truncated"),
    "bomb": (lambda p: Image.new("1", (6000, 6000)).save(p, format="PNG"), "too large"),
    "blank": (lambda p: Image.new("L", (40, 40), 255).save(p, format="PNG"), "blank"),
}


@pytest.mark.parametrize("kind", sorted(BAD_UPLOADS))
def test_bad_uploads(client, tmp_path, kind):
    from gradio_client import handle_file

    make, message = BAD_UPLOADS[kind]
    path = tmp_path / "upload.png"
    make(path)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(path)), api_name="/prepare")
    assert client.predict(handle_file(str(EXAMPLE)), api_name="/prepare")


def test_readme_example_runs_against_the_shipped_models(monkeypatch):
    """The README's "Using the app from Python" code, run as it is against the shipped app."""
    import app

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using the app from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    port = _free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                    quiet=True, **app.launch_kwargs())
    monkeypatch.chdir(REPO)                                 # the example's paths are relative
    try:
        scope: dict = {}
        exec(code.replace("http://127.0.0.1:7860/", f"http://127.0.0.1:{port}/"), scope)
    finally:
        app.demo.close()
    assert scope["table"]["headers"][1:3] == ["mnist-vae-z16", "mnist-flow-z16"]
    assert len(scope["gallery"]) == 3 and scope["posterior"] is not None
    assert len(scope["grids"]) == 2 and scope["note"] == ""
