"""The result cache (identical inputs -> the identical stored result, bounded in entries and
bytes, concurrent identical requests computed once) and the atomic, content-addressed files."""

import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from latentlab import cache


def test_fingerprint_hashes_arrays_and_files_by_content(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(a)
    b.write_bytes(a.read_bytes())
    assert cache.fingerprint("x", str(a)) == cache.fingerprint("x", str(b))   # same bytes
    b.write_bytes(a.read_bytes() + b"\0")
    assert cache.fingerprint("x", str(a)) != cache.fingerprint("x", str(b))
    img = np.zeros((4, 4), np.float32)
    assert cache.fingerprint(img) == cache.fingerprint(img.copy())
    assert cache.fingerprint(img) != cache.fingerprint(img.astype(np.float64))  # dtype counts
    assert cache.fingerprint(img) != cache.fingerprint(img.reshape(2, 8))       # shape counts
    assert cache.fingerprint({"a": 1, "b": [2]}) == cache.fingerprint({"b": [2], "a": 1})
    assert cache.fingerprint([1, 2]) != cache.fingerprint([12])
    with pytest.raises(TypeError):
        cache.fingerprint(object())


def test_identical_inputs_get_the_identical_result_and_others_are_computed():
    c = cache.ResultCache(max_entries=8)
    calls = []

    def compute(x):
        calls.append(x)
        return np.full(4, float(x))

    first = c.get(cache.fingerprint("f", 1), lambda: compute(1))
    again = c.get(cache.fingerprint("f", 1), lambda: compute(1))
    other = c.get(cache.fingerprint("f", 2), lambda: compute(2))
    assert again is first and calls == [1, 2] and other[0] == 2.0
    assert (c.hits, c.misses) == (1, 2)


def test_cache_is_bounded_in_entries_and_bytes():
    c = cache.ResultCache(max_entries=3, max_bytes=10_000)
    for i in range(10):
        c.get(f"k{i}", lambda: np.zeros(100, np.uint8))
    assert len(c) == 3 and c.lookup("k9") is not None and c.lookup("k0") is None  # LRU
    c.lookup("k7")                                          # used: now the newest
    c.get("k10", lambda: np.zeros(100, np.uint8))
    assert c.lookup("k7") is not None and c.lookup("k8") is None
    big = cache.ResultCache(max_entries=100, max_bytes=10_000)
    for i in range(10):
        big.get(f"k{i}", lambda: np.zeros(3000, np.uint8))
    assert len(big) == 3 and big.nbytes <= 10_000
    big.get("huge", lambda: np.zeros(20_000, np.uint8))     # larger than the bound: not kept
    assert big.lookup("huge") is None and big.nbytes <= 10_000


def test_concurrent_identical_requests_compute_once():
    c = cache.ResultCache()
    calls, results = [], []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return [1, 2, 3]

    threads = [threading.Thread(target=lambda: results.append(c.get("same", slow)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 6 and all(r is results[0] for r in results)


def test_errors_are_not_stored_and_reach_every_waiter():
    c = cache.ResultCache()

    def bad():
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError, match="no"):
            c.get("k", bad)
    assert len(c) == 0 and c.get("k", lambda: 5) == 5


def test_invalid_entries_are_recomputed():
    c = cache.ResultCache()
    c.get("k", lambda: "old")
    assert c.get("k", lambda: "new", valid=lambda v: v != "old") == "new"


def test_files_are_content_addressed_complete_and_never_rewritten(tmp_path):
    store = cache.FileStore(tmp_path / "out")
    img = np.linspace(0, 1, 28 * 28).reshape(28, 28)
    path = store.png(img)
    mtime = os.stat(path).st_mtime_ns
    assert store.png(img.copy()) == path and os.stat(path).st_mtime_ns >= mtime
    assert np.array_equal(np.asarray(Image.open(path)), (img * 255 + 0.5).astype(np.uint8))
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0] = 200
    assert np.array_equal(np.asarray(Image.open(store.png(rgb))), rgb)     # uint8 kept as is
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]  # no partial files
    assert store.exists([(path, "caption")]) and store.exists("not ours")
    os.utime(path, (0, 0))
    store.prune()
    assert not os.path.exists(path) and not store.exists([(path, "caption")])


def test_memoized_uses_the_shared_cache_and_skips_odd_inputs():
    calls = []
    key = ("test_memoized", time.time_ns())
    a = cache.memoized(key, lambda: calls.append(1) or [1])
    b = cache.memoized(key, lambda: calls.append(1) or [1])
    assert a is b and len(calls) == 1
    cache.memoized((object(),), lambda: calls.append(1) or [1])            # not cached
    cache.memoized((object(),), lambda: calls.append(1) or [1])
    assert len(calls) == 3
