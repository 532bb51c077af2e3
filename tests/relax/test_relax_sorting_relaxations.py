"""soft_sort/soft_rank/soft_topk/soft_topk_mask as Relaxations: exact hard forms, a gap that
shrinks as the regularization strength goes to 0, and pipeline stages with no hand-written
hard form (train/infer/mismatch)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import pipeline as pl
from diffsys import relax

X = np.array([[0.3, -1.2, 2.0, 0.55, -0.4], [1.5, 0.2, -0.7, 0.9, 3.1]])

CASES = {
    "sort": (relax.soft_sort, {}, np.sort(X, axis=-1)),
    "sort_desc": (relax.soft_sort, {"descending": True}, -np.sort(-X, axis=-1)),
    "rank": (relax.soft_rank, {}, np.argsort(np.argsort(X, axis=-1), axis=-1) + 1.0),
    "rank_desc": (
        relax.soft_rank,
        {"descending": True},
        np.argsort(np.argsort(-X, axis=-1), axis=-1) + 1.0,
    ),
    "topk": (relax.soft_topk, {"k": 2}, -np.sort(-X, axis=-1)[:, :2]),
    "topk_mask": (
        relax.soft_topk_mask,
        {"k": 2},
        (np.argsort(np.argsort(-X, axis=-1), axis=-1) < 2).astype(float),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hard_forms_are_the_exact_operations(name):
    fn, kw, expected = CASES[name]
    assert isinstance(fn, relax.Relaxation)
    np.testing.assert_array_equal(fn.hard(X, **kw), expected)
    # the strength is accepted and ignored by the hard form, like temperature elsewhere
    np.testing.assert_array_equal(fn.hard(X, **kw, regularization_strength=5.0), expected)
    # along another axis, batched over the rest
    np.testing.assert_array_equal(np.moveaxis(fn.hard(X.T, **kw, axis=0), 0, -1), expected)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_gap_to_the_hard_form_shrinks_as_the_regularization_goes_to_zero(name, regularization):
    fn, kw, _ = CASES[name]
    gaps = [
        fn.gap(X, **kw, regularization=regularization, regularization_strength=eps)
        for eps in (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
    ]
    assert gaps[0] > 0.05  # a large strength is visibly soft
    assert all(b <= a + 1e-12 for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-6, gaps


def test_calling_the_relaxation_is_calling_the_function():
    from diffsys.relax import sorting

    for name in ("soft_sort", "soft_rank"):
        np.testing.assert_array_equal(
            getattr(relax, name)(X, regularization_strength=0.7),
            getattr(sorting, name)(X, regularization_strength=0.7),
        )
    with pytest.raises(ValueError, match="soft_rank: regularization_strength must be finite"):
        relax.soft_rank(X, regularization_strength=-1.0)
    with pytest.raises(ValueError, match=r"soft_topk_mask.hard: k must satisfy 1 <= k <= n = 5"):
        relax.soft_topk_mask.hard(X, 7)


def test_hard_topk_sends_gradient_to_the_selected_values():
    x = X[0]
    w = np.array([1.0, 10.0])
    g = ds.grad(lambda x: dnp.sum(relax.soft_topk.hard(x, 2) * w))(x)
    expected = np.zeros_like(x)
    expected[np.argsort(-x)[:2]] = w
    np.testing.assert_array_equal(g, expected)
    # the straight-through form: exact top-k values, the soft top-k's derivative
    st = relax.soft_topk.straight_through(x, 2, regularization_strength=0.5)
    np.testing.assert_array_equal(st, relax.soft_topk.hard(x, 2))


def _topk_pipeline(stage_fn):
    return pl.Pipeline(
        [pl.Stage("scores", lambda x: 2.0 * x), pl.Stage("top2", stage_fn)],
        batch_keys=("x",),
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: relax.soft_topk_mask.partial(k=2, regularization_strength=3.0),
        lambda: functools.partial(relax.soft_topk_mask, k=2, regularization_strength=3.0),
    ],
    ids=["Relaxation.partial", "functools.partial"],
)
def test_a_relaxed_topk_stage_needs_no_hand_written_hard_form(make):
    pipe = _topk_pipeline(make())
    assert pipe.stages["top2"].kind == "relaxed"
    batch = {"x": X}
    soft = relax.soft_topk_mask(2.0 * X, 2, regularization_strength=3.0)
    hard = relax.soft_topk_mask.hard(2.0 * X, 2)
    np.testing.assert_allclose(pipe(batch, mode="train"), soft)
    np.testing.assert_array_equal(pipe(batch, mode="infer"), hard)
    row = pipe.mismatch(batch)["top2"]
    assert row.max_abs == pytest.approx(np.max(np.abs(soft - hard)))
    assert row.max_abs > 0.05


def test_partial_keeps_the_hard_form_and_names_the_fixed_arguments():
    top2 = relax.soft_topk_mask.partial(k=2, regularization_strength=0.01)
    assert repr(top2) == "Relaxation(soft_topk_mask(k=2, regularization_strength=0.01))"
    np.testing.assert_array_equal(top2(X), top2.hard(X))
    assert top2.gap(X) == 0.0


def test_the_strength_is_checked_wherever_it_is_passed():
    for call in (
        lambda: relax.soft_rank(X, "l2", 0.0),  # positional
        lambda: relax.soft_rank(X, regularization_strength=np.inf),
        lambda: relax.soft_rank(X, regularization_strength=np.array(-1.0)),
    ):
        with pytest.raises(ValueError, match="soft_rank: regularization_strength must be"):
            call()
    with pytest.raises(ValueError, match="softmax: temperature must be finite and > 0"):
        relax.softmax(X, -1.0)


def test_kind_exact_keeps_the_surrogate_at_inference():
    stage = pl.Stage("probs", relax.softmax, kind="exact")
    assert stage.kind == "exact" and stage.hard_fn is None
    assert pl.Stage("probs", relax.softmax).kind == "relaxed"
