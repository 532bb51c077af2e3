"""One meaning per name: ``systems.data.Binarize`` (was ``SoftThreshold``) is built on
``relax.soft_step``/``relax.straight_through``; ``relax.soft_gate`` (was ``soft_threshold``);
the old names warn and saved pipelines that use them still load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import pipeline as pl
from diffsys import relax
from diffsys.systems import data
from diffsys.systems.data import Binarize

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_old_names_warn_and_are_the_new_objects():
    with pytest.warns(DeprecationWarning, match=r"use diffsys\.systems\.data\.Binarize"):
        from diffsys.systems.data import SoftThreshold
    assert SoftThreshold is Binarize
    with pytest.warns(DeprecationWarning, match=r"use diffsys\.relax\.soft_gate"):
        old = relax.soft_threshold
    assert old is relax.soft_gate
    with pytest.raises(AttributeError, match="no attribute 'SoftThresh'"):
        data.SoftThresh  # noqa: B018


def test_one_meaning_per_name():
    assert "SoftThreshold" not in data.__all__
    assert "soft_threshold" not in relax.__all__
    for md in DOCS.glob("*.md"):  # the guide defines no third formula under the name
        assert "class SoftThreshold" not in md.read_text(encoding="utf-8"), md.name


def test_binarize_is_relax_soft_step_of_the_scaled_distance(rng):
    b = Binarize([0.3, -0.1], 6.0, channels=2)
    x = rng.normal(size=(3, 2, 4))
    t = b.threshold[None, :, None]
    k = np.exp(b.log_sharpness)[None, :, None]
    np.testing.assert_array_equal(b.relaxed(x), relax.soft_step((x - t) * k))
    np.testing.assert_array_equal(b.hard(x), (x > t).astype(float))
    # straight-through: hard values, the relaxed derivatives, in x and in the parameters
    np.testing.assert_array_equal(b.straight_through(x), b.hard(x))
    w = rng.normal(size=x.shape)
    for argnums in (0, 1):
        g_st = ds.grad(lambda m, x: dnp.sum(m.straight_through(x) * w), argnums)(b, x)
        g_r = ds.grad(lambda m, x: dnp.sum(m.relaxed(x) * w), argnums)(b, x)
        for a, c in zip(ds.tree_leaves(g_st), ds.tree_leaves(g_r), strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def _as_an_older_diffsys_wrote_it(directory: Path, renames: dict[str, str]) -> None:
    """Rewrite the names in a saved pipeline's JSON (and its checksum: sha256 of the sorted
    JSON without it, see diffsys.train.checkpoint) as an older diffsys wrote them."""
    path = directory / "checkpoint.json"
    doc = json.loads(path.read_text())
    doc.pop("checksum")
    text = json.dumps(doc)
    for new, old in renames.items():
        assert f'"{new}"' in text, new
        text = text.replace(f'"{new}"', f'"{old}"')
    doc = json.loads(text)
    doc["checksum"] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(doc))


def test_pipelines_saved_under_the_old_names_still_load(tmp_path, rng):
    pytest.importorskip("safetensors")
    pipe = pl.Pipeline(
        [pl.Stage("thr", Binarize(0.4, 5.0)), pl.Stage("gate", relax.soft_gate)],
        batch_keys=("x",),
    )
    assert pipe.stages["gate"].kind == "relaxed"  # a Relaxation brings its hard form
    pipe.save(tmp_path / "p")
    _as_an_older_diffsys_wrote_it(
        tmp_path / "p",
        {
            "systems.data.Binarize": "systems.data.SoftThreshold",
            "relax.soft_gate": "relax.soft_threshold",
        },
    )
    again = pl.load(tmp_path / "p")
    assert type(again.stages["thr"].module) is Binarize
    assert again.stages["gate"].fn is relax.soft_gate
    x = rng.random((2, 3))
    for mode in ("train", "infer"):
        np.testing.assert_array_equal(again({"x": x}, mode=mode), pipe({"x": x}, mode=mode))
