"""The data stages inside diffsys.pipeline: relaxed stages are recognised, mismatch is
measured, and pipelines of them save and load (registered stage types)."""

from __future__ import annotations

import numpy as np
import pytest

pl = pytest.importorskip("diffsys.pipeline")

from diffsys.systems.data import (  # noqa: E402
    AffineWarp,
    Binarize,
    ColorJitter,
    LearnableBlur,
    Normalize,
    Resize,
)


def test_relaxed_stages_are_recognised():
    kinds = {
        name: pl.Stage(name, m).kind
        for name, m in [
            ("blur", LearnableBlur()),
            ("threshold", Binarize()),
            ("norm", Normalize(1)),
            ("warp", AffineWarp()),
            ("resize", Resize(4)),
            ("jitter", ColorJitter()),
        ]
    }
    assert kinds == {
        "blur": "exact",
        "threshold": "relaxed",
        "norm": "exact",
        "warp": "exact",
        "resize": "exact",
        "jitter": "relaxed",
    }


def test_mismatch_of_binarize(rng):
    pipe = pl.Pipeline(
        [pl.Stage("blur", LearnableBlur(0.8)), pl.Stage("threshold", Binarize(0.5, 4.0))]
    )
    x = rng.random((4, 1, 6, 6))
    report = pipe.mismatch({"x": x})
    row = report["threshold"]
    st = Binarize(0.5, 4.0)
    blurred = LearnableBlur(0.8)(x)
    assert row.max_abs == pytest.approx(np.max(np.abs(st.relaxed(blurred) - st.hard(blurred))))


@pytest.mark.parametrize(
    "module",
    [
        LearnableBlur([0.6, 0.9, 1.2], channels=3, padding="edge"),
        Binarize(0.4, 6.0, channels=3),
        Binarize(0.4, 6.0, learn_sharpness=False),
        Normalize(3, mean=[0.1, 0.2, 0.3], std=[1.0, 2.0, 3.0]),
        Normalize(3, stats="instance"),
        AffineWarp(init=[[0.9, 0.1, 0.0], [0.0, 1.1, 0.2]], size=(5, 7)),
        Resize((4, 5), align_corners=True),
        ColorJitter(0.1, 0.2, 0.3),
    ],
    ids=lambda m: type(m).__name__,
)
def test_save_and_load_round_trip(module, tmp_path, rng):
    pytest.importorskip("safetensors")
    pipe = pl.Pipeline([pl.Stage("stage", module)])
    pipe.save(tmp_path / "p")
    again = pl.load(tmp_path / "p")
    x = rng.random((2, 3, 6, 6))
    pipe.infer()
    again.infer()
    np.testing.assert_array_equal(again({"x": x}), pipe({"x": x}))
    assert type(again.stages["stage"].module) is type(module)


def test_color_jitter_in_a_pipeline_is_random_in_training_and_off_at_inference(rng):
    x = rng.uniform(0.2, 0.8, size=(4, 3, 6, 6))
    pipe = pl.Pipeline([pl.Stage("jitter", ColorJitter(0.3, 0.3, 0.3))])
    a, b = pipe({"x": x}, key=0), pipe({"x": x}, key=0)
    np.testing.assert_array_equal(a, b)  # the same key, the same draws
    assert not np.allclose(a, x)
    assert not np.allclose(pipe({"x": x}, key=1), a)
    pipe.infer()
    np.testing.assert_array_equal(pipe({"x": x}), x)  # inference: no augmentation


def test_a_saved_data_pipeline_loads_in_a_process_that_never_imported_systems(tmp_path):
    pytest.importorskip("safetensors")
    import subprocess
    import sys

    pl.Pipeline([pl.Stage("blur", LearnableBlur(1.3))]).save(tmp_path / "p")
    code = (
        "import sys; from diffsys import pipeline as pl; "
        "assert 'diffsys.systems.data' not in sys.modules; "
        f"p = pl.load({str(tmp_path / 'p')!r}); "
        "print(type(p.stages['blur'].module).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "LearnableBlur"
