"""What diffsys's file formats share: atomic writes, file names confined to their folder, and
a small schema checker for the JSON they hold.

Three formats build on it: ``diffsys.train`` checkpoints, saved pipelines and saved graphs.
Each reads its JSON, checks the whole document against its schema with :func:`validate`
(before it builds or allocates anything), and reports any failure as its own exception
class with the path of the offending field (``leaves[2].dtype``).

A schema is any callable ``check(value, field)`` that raises :class:`SchemaError` naming
``field`` when ``value`` does not fit; the helpers below build the usual ones.

>>> schema = record({"step": integer(min=0), "mode": one_of("train", "infer")})
>>> validate({"step": 3, "mode": "train"}, schema, error=ValueError, where="demo.json")
>>> validate({"step": "abc", "mode": "train"}, schema, error=ValueError, where="demo.json")
Traceback (most recent call last):
...
ValueError: demo.json: field 'step': expected an integer, got 'abc'
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "SchemaError",
    "any_json",
    "atomic_write",
    "boolean",
    "either",
    "integer",
    "list_of",
    "mapping",
    "nullable",
    "number",
    "one_of",
    "plain_file",
    "record",
    "remove_stale_temps",
    "shape",
    "string",
    "tagged",
    "validate",
]

Schema = Callable[[Any, str], None]

# --- atomic writes --------------------------------------------------------------------------------

# A temporary file is ".<target>.<pid>.<random>.tmp" in the target's folder: the pid tells a
# later save whether the writer is still alive.
_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
_LIVE: set[str] = set()  # temporary files this process is writing now (threads)
_LOCK = threading.Lock()
_STALE_AGE_S = 3600.0  # where process ids cannot be checked, older temporary files are stale


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a
    part: a temporary file in the same folder, flushed and fsynced, then ``os.replace``.

    On any failure the temporary file is removed; temporary files left by a process that
    was killed mid-write are removed by the next write into the same folder
    (:func:`remove_stale_temps`).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> atomic_write(p, b"{}"); p.read_bytes()
    b'{}'
    """
    path = Path(path)
    remove_stale_temps(path.parent)
    with _LOCK:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
        )
        _LIVE.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        _LIVE.discard(tmp)
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs (None: cannot tell on this platform)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would not be a harmless probe there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``directory`` when its writer
    died (the writing process no longer runs, or, where that cannot be checked, the file is
    over an hour old). Files being written by live processes are kept. Returns the removed
    paths."""
    removed = []
    with _LOCK:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return removed
        for entry in entries:
            m = _TEMP.match(entry.name)
            if m is None or entry.path in _LIVE:
                continue
            if _is_stale(entry, int(m["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _is_stale(entry: os.DirEntry, pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process is writing only the files in _LIVE
    alive = _alive(pid)
    if alive is not None:
        return not alive
    try:
        return time.time() - entry.stat().st_mtime > _STALE_AGE_S
    except OSError:
        return False


# --- schemas --------------------------------------------------------------------------------------


class SchemaError(ValueError):
    """``field`` of a document does not fit its schema: ``reason`` says how."""

    def __init__(self, field: str, reason: str, *, shape: bool = False) -> None:
        super().__init__(f"field {field!r}: {reason}")
        self.field = field
        self.reason = reason
        self.shape = shape  # the value is not even of the expected kind (see either)


def validate(
    doc: Any, schema: Schema, *, error: type[Exception], where: str, field: str = ""
) -> None:
    """Check ``doc`` against ``schema``; raise ``error(f"{where}: field 'a.b': reason")``.
    ``field`` is the path of ``doc`` itself within its file (empty for the whole file)."""
    try:
        schema(doc, field)
    except SchemaError as exc:
        raise error(f"{where}: field {exc.field or '<root>'!r}: {exc.reason}") from None
    except RecursionError:
        raise error(f"{where}: the document is nested too deeply") from None


def _clip(x) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(field: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{field}[{key}]"
    return f"{field}.{key}" if field else key


def integer(*, min: int | None = None, max: int | None = None) -> Schema:
    """An int (not a bool) in ``[min, max]``."""

    def check(x, field):
        if not isinstance(x, int) or isinstance(x, bool):
            raise SchemaError(field, f"expected an integer, got {_clip(x)}")
        if (min is not None and x < min) or (max is not None and x > max):
            raise SchemaError(field, f"{x} is out of range [{min}, {max}]")

    return check


def number(*, finite: bool = True) -> Schema:
    """An int or float (not a bool); finite unless ``finite=False``."""

    def check(x, field):
        if not isinstance(x, int | float) or isinstance(x, bool):
            raise SchemaError(field, f"expected a number, got {_clip(x)}")
        if finite and isinstance(x, float) and not math.isfinite(x):
            raise SchemaError(field, f"expected a finite number, got {x}")

    return check


def boolean(x, field) -> None:
    """``true`` or ``false``."""
    if not isinstance(x, bool):
        raise SchemaError(field, f"expected true or false, got {_clip(x)}")


def string(*, pattern: str | None = None, max_len: int = 4096) -> Schema:
    """A str, matching ``pattern`` (a full match) when given."""
    rx = re.compile(pattern) if pattern is not None else None

    def check(x, field):
        if not isinstance(x, str):
            raise SchemaError(field, f"expected a string, got {_clip(x)}")
        if len(x) > max_len or (rx is not None and not rx.fullmatch(x)):
            raise SchemaError(field, f"malformed string {_clip(x)}")

    return check


def one_of(*choices) -> Schema:
    """One of a closed vocabulary of JSON values."""

    def check(x, field):
        if not any(type(x) is type(c) and x == c for c in choices):
            raise SchemaError(field, f"{_clip(x)} is not one of {list(choices)}")

    return check


def plain_file(*, pattern: str = r"[A-Za-z0-9._-]+") -> Schema:
    """A plain file name (no folder part, not ``.``/``..``) matching ``pattern``: files a
    document names are read from the document's own folder only."""
    rx = re.compile(pattern)

    def check(x, field):
        if (
            not isinstance(x, str)
            or x in ("", ".", "..")
            or os.path.basename(x) != x
            or "/" in x
            or "\\" in x
            or not rx.fullmatch(x)
        ):
            raise SchemaError(
                field, f"{_clip(x)} is not a plain file name in the document's own folder"
            )

    return check


def nullable(schema: Schema) -> Schema:
    """``null`` or ``schema``."""

    def check(x, field):
        if x is not None:
            schema(x, field)

    return check


def list_of(item: Schema, *, min_len: int = 0, max_len: int | None = None) -> Schema:
    """A list whose every item fits ``item``."""

    def check(x, field):
        if not isinstance(x, list):
            raise SchemaError(field, f"expected a list, got {_clip(x)}")
        if len(x) < min_len or (max_len is not None and len(x) > max_len):
            raise SchemaError(field, f"expected {min_len} to {max_len} items, got {len(x)}")
        for i, v in enumerate(x):
            item(v, _join(field, i))

    return check


def mapping(value: Schema, *, key: Schema | None = None) -> Schema:
    """An object whose every value fits ``value`` (and key, ``key``)."""

    def check(x, field):
        if not isinstance(x, dict):
            raise SchemaError(field, f"expected an object, got {_clip(x)}")
        for k, v in x.items():
            if key is not None:
                try:
                    key(k, _join(field, k))
                except SchemaError:
                    raise SchemaError(_join(field, str(k)), f"malformed key {_clip(k)}") from None
            value(v, _join(field, k))

    return check


def record(required: Mapping[str, Schema], optional: Mapping[str, Schema] = {}) -> Schema:  # noqa: B006
    """An object with exactly these fields (``optional`` ones may be missing); unknown
    fields are refused."""
    allowed = set(required) | set(optional)

    def check(x, field):
        if not isinstance(x, dict):
            raise SchemaError(field, f"expected an object, got {_clip(x)}")
        for k in x:
            if k not in allowed:
                raise SchemaError(
                    _join(field, str(k)), f"unknown field (allowed: {sorted(allowed)})", shape=True
                )
        for k in required:
            if k not in x:
                raise SchemaError(_join(field, k), "missing", shape=True)
        for k, v in x.items():
            (required.get(k) or optional[k])(v, _join(field, k))

    return check


def tagged(variants: Mapping[str, Schema]) -> Schema:
    """An object tagged by a key: the first key of ``variants`` (in order) that it holds is
    its tag, and it must fit that variant's schema (usually a :func:`record` that names the
    tag, so that other keys are refused)."""

    def check(x, field):
        if not isinstance(x, dict):
            raise SchemaError(
                field, f"expected an object tagged {sorted(variants)}, got {_clip(x)}"
            )
        for tag, schema in variants.items():
            if tag in x:
                schema(x, field)
                return
        raise SchemaError(
            field, f"expected one of the tags {sorted(variants)}, got {sorted(x)[:6]}"
        )

    return check


def either(*schemas: Schema, what: str) -> Schema:
    """Fits one of ``schemas`` (tried in order); ``what`` describes them for the error."""

    def check(x, field):
        errors = []
        for s in schemas:
            try:
                s(x, field)
                return
            except SchemaError as exc:
                errors.append(exc)
        # an alternative the value has the form of (a record with one bad field) says more
        inner = [e for e in errors if len(e.field) > len(field) and not e.shape]
        if inner:
            raise max(inner, key=lambda e: len(e.field))
        raise SchemaError(field, f"expected {what}, got {_clip(x)}")

    return check


def any_json(x, field) -> None:
    """Any JSON value (free-form data such as a user's config)."""
    if x is None or isinstance(x, bool | int | str):
        return
    if isinstance(x, float):
        if not math.isfinite(x):
            raise SchemaError(field, f"non-finite number {x}")
        return
    if isinstance(x, list):
        for i, v in enumerate(x):
            any_json(v, _join(field, i))
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                raise SchemaError(field, f"non-string key {_clip(k)}")
            any_json(v, _join(field, k))
        return
    raise SchemaError(field, f"not JSON data: {_clip(x)}")


MAX_ELEMENTS = 2**48
"""The most elements an array a file declares may have (beyond any real memory)."""


def shape(*, max_elements: int = MAX_ELEMENTS, max_ndim: int = 64) -> Schema:
    """An array shape: a list of ints >= 0 whose product is at most ``max_elements``."""

    def check(x, field):
        if not isinstance(x, list) or len(x) > max_ndim:
            raise SchemaError(field, f"expected a shape (a list of integers >= 0), got {_clip(x)}")
        for i, d in enumerate(x):
            if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                raise SchemaError(_join(field, i), f"expected an integer >= 0, got {_clip(d)}")
        if math.prod(x) > max_elements:
            raise SchemaError(
                field, f"shape {_clip(x)} has {math.prod(x):.3g} elements, over {max_elements:.3g}"
            )

    return check
