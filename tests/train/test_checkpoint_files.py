"""Checkpoint files as untrusted input: only files of the checkpoint's own folder are read,
nothing a file names is called unless it is in a closed vocabulary, every field is checked
(the error names it), and every random generator is saved and restored."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("safetensors")

from diffsys import nn, optim, train  # noqa: E402
from diffsys.train import CheckpointError  # noqa: E402
from diffsys.train.checkpoint import _checksum  # noqa: E402
from file_corruption import check_all, corruptions, read_json, write_json  # noqa: E402


def _resign(path, doc):
    """Write ``doc`` with a valid checksum: a file that is well formed as far as the
    checksum can tell (an attacker recomputes it; it has no key)."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    write_json(path, {**body, "checksum": _checksum(body)})


def _tree(seed):
    model = nn.Linear(3, 2, key=seed)
    return {
        "model": model,
        "opt": optim.adam(0.1).init(model),
        "n": 3,
        "f": 1.5,
        "s": np.float32(2.0),
    }


def _save(d, seed=0):
    gens = {
        "a": np.random.default_rng(1),
        "b": np.random.Generator(np.random.Philox(2)),
        "c": np.random.Generator(np.random.MT19937(3)),
        "d": np.random.Generator(np.random.SFC64(4)),
        "e": np.random.Generator(np.random.PCG64DXSM(5)),
    }
    train.save_checkpoint(
        d, _tree(seed), step=5, rng=gens, config={"lr": 0.1}, metadata={"who": "test"}
    )
    return gens


@pytest.mark.parametrize("how", ["relative", "absolute", "subfolder"])
def test_tensor_file_outside_the_checkpoint_folder_is_refused(tmp_path, how):
    _save(tmp_path / "victim", seed=1)
    _save(tmp_path / "mine", seed=0)
    victim = read_json(tmp_path / "victim" / "checkpoint.json")["tensors"]
    name = victim["file"]
    target = {
        "relative": f"../victim/{name}",
        "absolute": str(tmp_path / "victim" / name),
        "subfolder": f"sub/{name}",
    }[how]
    (tmp_path / "mine" / "sub").mkdir()
    (tmp_path / "mine" / "sub" / name).write_bytes((tmp_path / "victim" / name).read_bytes())
    doc = read_json(tmp_path / "mine" / "checkpoint.json")
    doc["tensors"] = {**victim, "file": target}
    _resign(tmp_path / "mine" / "checkpoint.json", doc)
    with pytest.raises(CheckpointError, match=r"'tensors\.file'.*plain file name"):
        train.load_checkpoint(tmp_path / "mine", like=_tree(9))


@pytest.mark.parametrize("name", ["seed", "default_rng", "RandomState", "__import__", "Generator"])
def test_a_file_cannot_name_a_function_to_call(tmp_path, monkeypatch, name):
    _save(tmp_path)
    doc = read_json(tmp_path / "checkpoint.json")
    doc["rng"]["a"]["bit_generator"] = name
    _resign(tmp_path / "checkpoint.json", doc)
    like = _tree(9)
    calls = []
    for fn in ("seed", "default_rng", "RandomState"):
        monkeypatch.setattr(np.random, fn, lambda *a, _fn=fn, **k: calls.append(_fn))
    with pytest.raises(CheckpointError, match=r"'rng\.a\.bit_generator'.*not one of"):
        train.load_checkpoint(tmp_path, like=like)
    assert calls == []


def test_every_generator_is_saved_and_restored(tmp_path):
    gens = _save(tmp_path)
    expected = {k: g.random(3) for k, g in gens.items()}  # the draws after the save
    _, info = train.load_checkpoint(tmp_path, like=_tree(9))
    assert sorted(info.rng) == sorted(gens)
    for k, g in info.rng.items():
        assert type(g.bit_generator) is type(gens[k].bit_generator)
        np.testing.assert_array_equal(g.random(3), expected[k], err_msg=k)
    # restored in place into the caller's generators, all of them
    mine = {k: np.random.Generator(type(g.bit_generator)(99)) for k, g in gens.items()}
    _, info = train.load_checkpoint(tmp_path, like=_tree(9), rng=mine)
    for k, g in mine.items():
        assert info.rng[k] is g
        np.testing.assert_array_equal(g.random(3), expected[k], err_msg=k)


def test_a_generator_the_checkpoint_lacks_is_an_error(tmp_path):
    train.save_checkpoint(tmp_path, _tree(0), rng={"a": np.random.default_rng(0)})
    with pytest.raises(CheckpointError, match=r"no state for the generators \['b'\]"):
        gens = {"a": np.random.default_rng(1), "b": np.random.default_rng(2)}
        train.load_checkpoint(tmp_path, like=_tree(0), rng=gens)


def _free_form(path):
    return path[0] in ("config", "metadata") and len(path) > 1


def test_every_field_of_a_checkpoint_is_checked_and_named(tmp_path):
    """The class test: each field of checkpoint.json in turn gets a value of another type
    (or is deleted), the file is re-signed, and loading must raise CheckpointError naming
    that field -- never a bare KeyError/TypeError/ValueError."""
    _save(tmp_path)
    index = tmp_path / "checkpoint.json"
    doc = read_json(index)
    cases = corruptions(doc, skip=_free_form, optional=lambda p: p[0] == "rng" and len(p) == 2)
    assert len(cases) > 100
    wrong = check_all(
        cases,
        index,
        load=lambda: train.load_checkpoint(tmp_path, like=_tree(9)),
        error=CheckpointError,
        write=_resign,
    )
    write_json(index, doc)
    train.load_checkpoint(tmp_path, like=_tree(9))  # the original still loads
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("step", "abc", r"'step': expected an integer"),
        ("leaves.0.dtype", "garbage", r"'leaves\[0\]\.dtype': 'garbage' is not one of"),
        ("leaves.0.dtype", "|O", r"'leaves\[0\]\.dtype'"),
        ("leaves.0.shape", [10**9, 10**9], r"'leaves\[0\]\.shape'.*elements"),
        ("leaves.0.shape", [-1], r"'leaves\[0\]\.shape\[0\]': expected an integer >= 0"),
        ("tensors.bytes", -5, r"'tensors\.bytes'"),
        ("leaves", [], r"missing from the checkpoint"),
    ],
)
def test_hostile_values_are_format_errors(tmp_path, field, value, match):
    _save(tmp_path)
    doc = read_json(tmp_path / "checkpoint.json")
    *parents, last = [int(p) if p.isdigit() else p for p in field.split(".")]
    target = doc
    for p in parents:
        target = target[p]
    target[last] = value
    _resign(tmp_path / "checkpoint.json", doc)
    with pytest.raises(CheckpointError, match=match):
        train.load_checkpoint(tmp_path, like=_tree(9))


def test_json_with_non_standard_constants_is_refused(tmp_path):
    _save(tmp_path)
    path = tmp_path / "checkpoint.json"
    text = json.dumps({**read_json(path), "step": float("nan")})
    path.write_text(text)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        train.load_checkpoint(tmp_path, like=_tree(9))
