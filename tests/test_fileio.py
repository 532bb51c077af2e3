"""diffsys.fileio: the atomic writes of every saver (no temporary file outlives a failed or
killed save) and the schema helpers the loaders check their files with."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import diffsys as ds
from diffsys import fileio, nn, train
from diffsys import fileio as fio
from diffsys import pipeline as pl

pytest.importorskip("safetensors")

SRC = Path(__file__).resolve().parents[1] / "src"


def test_docstring_examples():
    result = doctest.testmod(fileio, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def _temps(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


# Each saver, as a statement run in a fresh process with ``d`` the target folder.
SAVERS = {
    "checkpoint": "train.save_checkpoint(d, {'w': np.ones(3)}, step=1)",
    "pipeline": "pl.Pipeline([pl.Stage('lin', nn.Linear(2, 2, key=0))]).save(d)",
    "graph": "ds.trace(lambda x: dnp.sin(x) * 2.0)(np.ones(3)).save(d)",
}
_KILLED = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import diffsys as ds, diffsys.numpy as dnp
    from diffsys import nn, train, pipeline as pl
    d = sys.argv[1]
    calls = []
    def killed(src, dst):  # the process dies between writing a file and renaming it
        calls.append(src)
        if len(calls) == int(sys.argv[2]):
            os._exit(3)
        return real(src, dst)
    real, os.replace = os.replace, killed
    {saver}
    """
)


def _save_here(kind: str, d: Path) -> None:
    import diffsys.numpy as dnp  # noqa: F401 - used by the saver statements

    exec(SAVERS[kind], {"np": np, "ds": ds, "dnp": dnp, "nn": nn, "train": train, "pl": pl, "d": d})


@pytest.mark.parametrize("when", [1, 2])
@pytest.mark.parametrize("kind", sorted(SAVERS))
def test_a_killed_save_leaves_no_temporary_file_behind_after_the_next(tmp_path, kind, when):
    """A process killed mid-save (after writing a temporary file, before renaming it)
    leaves that file; the next save into the folder removes it, and the folder loads."""
    script = tmp_path / "killed.py"
    script.write_text(_KILLED.format(saver=SAVERS[kind]))
    d = tmp_path / "out"
    d.mkdir()
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, str(script), str(d), str(when)], env=env, timeout=120)
    assert proc.returncode == 3
    assert len(_temps(d)) == 1  # what the killed process left
    _save_here(kind, d)
    assert _temps(d) == []
    {"checkpoint": lambda: train.load_checkpoint(d, like={"w": np.zeros(3)}),
     "pipeline": lambda: pl.load(d),
     "graph": lambda: ds.load_graph(d)}[kind]()  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SAVERS))
def test_a_failed_save_removes_its_temporary_file(tmp_path, monkeypatch, kind):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _save_here(kind, tmp_path)
    assert _temps(tmp_path) == []


def test_temporary_files_of_live_writers_and_other_files_are_kept(tmp_path):
    live = tmp_path / f".checkpoint.json.{os.getppid()}.abcd1234.tmp"  # the parent runs
    mine = tmp_path / "notes.tmp"  # not a name atomic_write makes
    live.write_bytes(b"x")
    mine.write_bytes(b"y")
    fio.atomic_write(tmp_path / "a.json", b"{}")
    assert live.exists() and mine.exists()
    assert (tmp_path / "a.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    "schema, value, field, reason",
    [
        (fio.integer(min=0), -1, "", "out of range"),
        (fio.integer(), True, "", "expected an integer"),
        (fio.record({"a": fio.boolean}), {"a": True, "b": 1}, "b", "unknown field"),
        (fio.record({"a": fio.boolean}), {}, "a", "missing"),
        (fio.list_of(fio.string()), ["x", 3], "[1]", "expected a string"),
        (fio.mapping(fio.number()), {"k": float("inf")}, "k", "finite"),
        (fio.shape(), [2, -1], "[1]", "integer >= 0"),
        (fio.shape(), [2**30, 2**30], "", "elements"),
        (fio.plain_file(), "../x", "", "plain file name"),
        (fio.plain_file(), "/abs", "", "plain file name"),
        (fio.one_of("a", "b"), "seed", "", "not one of"),
        (fio.one_of(1), True, "", "not one of"),
        (fio.any_json, {"a": [object()]}, "a[0]", "not JSON"),
        (
            fio.either(fio.number(), fio.record({"s": fio.string()}), what="w"),
            {"s": 1},
            "s",
            "expected a string",
        ),
        (fio.either(fio.number(), fio.record({"s": fio.string()}), what="w"), {"x": 1}, "", "w"),
    ],
)
def test_schema_helpers_name_the_field(schema, value, field, reason):
    with pytest.raises(ValueError, match=reason) as info:
        fio.validate(value, schema, error=ValueError, where="f.json")
    assert f"field {field or '<root>'!r}" in str(info.value)
