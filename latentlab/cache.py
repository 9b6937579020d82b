"""Results a lecture hall asks for again and again: a bounded cache and atomic image files.

Every action of the app is deterministic: the same inputs and seed give the same pictures.
When a class clicks Sample with the default seed, one computation can answer everyone, so
``ResultCache`` keeps recent results keyed by a fingerprint of the request's inputs (an
image input is hashed by its pixels or, for a file, its bytes). It is bounded in entries and
in bytes, shared by all users (a result depends only on its inputs), and merges concurrent
identical requests: the second waits for the first instead of computing again.

``FileStore`` writes output images as content-addressed files, each under a temporary name
renamed into place: a file another request is being served is never rewritten. (Gradio
6's own numpy/PIL path writes ``<cache>/<hash of the bytes>/image.png`` in place, so two
requests with identical pictures could truncate a file while it is being sent: "Too much
data for declared Content-Length".) Gradio copies a file path it is handed into its cache
under a temporary name as well, and only once per content.

>>> cache = ResultCache(max_entries=2, max_bytes=1 << 20)
>>> calls = []
>>> def square(x):
...     calls.append(x)
...     return np.full(3, x * x)
>>> [int(cache.get(fingerprint("sq", x), lambda x=x: square(x))[0]) for x in (2, 2, 3)]
[4, 4, 9]
>>> calls, len(cache)
([2, 3], 2)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from latentlab import render
from latentlab.errors import UserError

T = TypeVar("T")
FILE_MAX_AGE_S = 1800  # Gradio has copied an output long before; the cache then recomputes


# ----------------------------------------------------------------------------- keys

def _feed(h: Any, value: Any) -> None:
    """Add one input to the hash; arrays by content, an existing file by its bytes."""
    if value is None or isinstance(value, (bool, int, float)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, str):
        if len(value) < 4096 and os.path.isfile(value):  # an uploaded image's path
            h.update(b"file:" + Path(value).read_bytes() + b";")
        else:
            h.update(b"str:" + value.encode() + b";")
    elif isinstance(value, np.ndarray):
        h.update(f"nd:{value.dtype}:{value.shape}:".encode() + np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Image.Image):
        _feed(h, np.asarray(value))
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, dict):
        h.update(f"map{len(value)}:".encode())
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
    else:
        raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def fingerprint(*parts: Any) -> str:
    """A hex key for request inputs (numbers, text, nested lists/dicts, arrays, file paths).

    >>> fingerprint("a", [1, 2.0], np.zeros(2)) == fingerprint("a", [1, 2.0], np.zeros(2))
    True
    >>> fingerprint(1) == fingerprint(1.0), fingerprint(np.zeros(2)) == fingerprint(np.ones(2))
    (False, False)
    """
    h = hashlib.sha1()
    _feed(h, parts)
    return h.hexdigest()


def nbytes(value: Any) -> int:
    """A rough size of a result in memory (arrays, text, containers, dataclasses)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (str, bytes)):
        return len(value) + 50
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(nbytes(k) + nbytes(v) for k, v in value.items()) + 100
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value) + 50
    if hasattr(value, "memory_usage"):  # a pandas DataFrame
        return int(value.memory_usage(deep=True).sum())
    return 50


# ----------------------------------------------------------------------------- the cache

class ResultCache:
    """Least-recently-used results, at most ``max_entries`` and about ``max_bytes``.

    ``get(key, compute, valid)`` returns the stored value when there is one and ``valid``
    accepts it, else computes it (once, however many threads ask at the same time).
    Values are shared: callers must not modify them. Exceptions are not stored.

    >>> cache = ResultCache(max_entries=10, max_bytes=100)
    >>> _ = cache.get("big", lambda: np.zeros(1000, np.uint8))   # over the byte bound
    >>> len(cache), cache.nbytes
    (0, 0)
    """

    def __init__(self, max_entries: int = 512, max_bytes: int = 64 << 20):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._store: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: str, compute: Callable[[], T],
            valid: Callable[[T], bool] = lambda _: True) -> T:
        with self._lock:
            found = self._store.get(key)
            if found is not None and valid(found[0]):
                self._store.move_to_end(key)
                self.hits += 1
                return found[0]
            waiting = self._pending.get(key)
            if waiting is None:
                self._pending[key] = mine = Future()
                self.misses += 1
        if waiting is not None:  # the same request is being computed: share its answer
            return waiting.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            mine.set_exception(exc)
            raise
        self._put(key, value)
        mine.set_result(value)
        return value

    def lookup(self, key: str, valid: Callable[[Any], bool] = lambda _: True) -> Any | None:
        """The stored value (counted as a hit), or None."""
        with self._lock:
            found = self._store.get(key)
            if found is None or not valid(found[0]):
                return None
            self._store.move_to_end(key)
            self.hits += 1
            return found[0]

    def store(self, key: str, value: Any) -> None:
        """Keep ``value`` for ``key`` (for results computed elsewhere, e.g. in a batch)."""
        self._put(key, value, pending=False)

    def _put(self, key: str, value: Any, pending: bool = True) -> None:
        size = nbytes(value)
        with self._lock:
            if pending:
                del self._pending[key]
            old = self._store.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            if size > self.max_bytes:
                return
            self._store[key] = (value, size)
            self.nbytes += size
            while len(self._store) > self.max_entries or self.nbytes > self.max_bytes:
                _, (_, dropped) = self._store.popitem(last=False)
                self.nbytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self.nbytes = 0


# ----------------------------------------------------------------------------- files

class FileStore:
    """Output images as content-addressed files, written atomically, old ones pruned.

    >>> store = FileStore(Path(tempfile.mkdtemp()))
    >>> a = store.png(np.eye(4)); a == store.png(np.eye(4)), Path(a).read_bytes()[:4]
    (True, b'\\x89PNG')
    """

    def __init__(self, root: Path, max_age_s: float = FILE_MAX_AGE_S):
        self.root, self.max_age_s = Path(root), max_age_s
        self._writes = 0

    def put(self, data: bytes, suffix: str) -> str:
        """``data`` under a name made from its hash; an existing file is left alone."""
        path = self.root / f"{hashlib.sha1(data).hexdigest()}{suffix}"
        if path.exists():
            os.utime(path)  # in use again: not pruned on its first use's schedule
            return str(path)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".part-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self._writes += 1
        if self._writes % 200 == 0:
            self.prune()
        return str(path)

    def png(self, image: np.ndarray) -> str:
        """A (H, W) or (H, W, 3) image, float in [0, 1] or uint8, as a PNG file's path."""
        buf = io.BytesIO()
        pixels = image if image.dtype == np.uint8 else render.to_uint8(image)
        Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
        return self.put(buf.getvalue(), ".png")

    def prune(self) -> None:
        """Remove files not used for ``max_age_s`` (a cached result that named one is then
        recomputed: see ``exists``)."""
        cutoff = time.time() - self.max_age_s
        for p in self.root.glob("*"):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
            except OSError:
                pass

    def exists(self, value: Any) -> bool:
        """Every file of ours that ``value`` names (in tuples, lists, dataclasses) exists."""
        if isinstance(value, str):
            return not value.startswith(str(self.root)) or os.path.exists(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return all(self.exists(getattr(value, f.name)) for f in dataclasses.fields(value))
        if isinstance(value, (list, tuple)):
            return all(self.exists(v) for v in value)
        return True


@lru_cache(maxsize=1)
def files() -> FileStore:
    """The server's store: a fresh folder inside Gradio's file cache (made on first use, not
    at import), so Gradio serves the files where they are instead of hashing and copying
    each one into its cache (its ``delete_cache`` ages them out like its own)."""
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder())
    root.mkdir(parents=True, exist_ok=True)
    return FileStore(Path(tempfile.mkdtemp(prefix="latentlab-out-", dir=root)))


@lru_cache(maxsize=1)
def results() -> ResultCache:
    """The server's result cache, shared by every tab."""
    return ResultCache()


def model_stamps(registry: Any, names: Any) -> list:
    """Each named checkpoint's file stamps (None for a name that is not listed), so a result
    is recomputed when a checkpoint of that name changes on disk."""
    out = []
    for name in names if isinstance(names, (list, tuple)) else [names]:
        try:
            out.append(registry.entry(name).stamp)
        except (UserError, TypeError):
            out.append(None)
    return out


def memoized(parts: tuple, compute: Callable[[], T]) -> T:
    """``compute()`` through the server's result cache, keyed by ``parts`` (inputs that
    cannot be fingerprinted, e.g. odd API payloads, are computed without the cache)."""
    try:
        key = fingerprint(*parts)
    except TypeError:
        return compute()
    return results().get(key, compute, files().exists)
