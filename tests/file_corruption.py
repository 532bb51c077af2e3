"""Corrupting saved files field by field: the class tests of the file formats (checkpoint,
saved pipeline, saved graph) use these to check that every field of a file is validated and
that the error names it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Path_ = tuple  # a path into a JSON document: keys and list indices


def field_name(path: Path_) -> str:
    """``("leaves", 2, "dtype")`` -> ``"leaves[2].dtype"`` (the form the errors use)."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def walk(doc: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) of ``doc``, parents before children."""
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from walk(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from walk(v, (*path, i))


def wrong_type(value: Any) -> Any:
    """A JSON value of another type than ``value``."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float | str):
        return {"bogus": 1}
    if isinstance(value, list):
        return {"bogus": 1}
    if isinstance(value, dict):
        return [1, "x"]
    return {"bogus": 1}  # None


def set_at(doc: Any, path: Path_, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return doc


def delete_at(doc: Any, path: Path_) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for p in path[:-1]:
        target = target[p]
    del target[path[-1]]
    return doc


def deleted(field: str) -> bool:
    return field.startswith("-")


def corruptions(
    doc: dict,
    skip: Callable[[Path_], bool] = lambda p: False,
    optional: Callable[[Path_], bool] = lambda p: False,
) -> list[tuple[str, dict]]:
    """``(field name, corrupted document)`` for every field of ``doc``: its value replaced
    by one of another type, and every object key deleted (named ``-field``).
    ``skip(path)`` leaves out the fields whose content is free-form (a user's config);
    ``optional(path)`` the entries that may be absent (an entry of a by-name mapping: a
    checkpoint with one generator fewer is still well formed), which are then only given
    values of another type."""
    out = []
    for path, value in walk(doc):
        if not path or skip(path):
            continue
        out.append((field_name(path), set_at(doc, path, wrong_type(value))))
        if isinstance(path[-1], str) and not optional(path):
            out.append(("-" + field_name(path), delete_at(doc, path)))
    return out


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_json(path: Path, doc: dict) -> None:
    Path(path).write_text(json.dumps(doc))


def names(message: str, field: str) -> bool:
    """Whether an error ``message`` names ``field`` (``-field``: a deleted key). A deleted
    key may be reported by the object that lacks it, the key named in the message
    (``field 'stages[0]': ... 'module'``): an object that lost its tag or a required field
    is wrong as a whole."""
    if not deleted(field):
        return f"'{field}'" in message
    field = field[1:]
    if f"'{field}'" in message:
        return True
    parent, _, key = field.rpartition(".")
    quoted = [m for m in re.findall(r"field '([^']*)'", message)]
    return (
        any(parent == q or parent.startswith(q + ".") for q in quoted) and f"'{key}'" in message
    )


def check_all(cases, index: Path, *, load: Callable[[], Any], error: type, write) -> list[str]:
    """Write each corrupted document to ``index`` (with ``write(index, doc)``; the checksum
    field itself is written as is) and load: every one must raise ``error`` naming its
    field. Returns the failures, one line each."""
    wrong = []
    for field, bad in cases:
        if field.lstrip("-") == "checksum":
            write_json(index, bad)
        else:
            write(index, bad)
        try:
            load()
        except error as exc:
            if field.lstrip("-") != "checksum" and not names(str(exc), field):
                wrong.append(f"{field}: the error names another field: {exc}")
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            wrong.append(f"{field}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{field}: loaded without an error")
    return wrong
