"""systems.augment: operations, the relaxed policy and its exact sampled form, MMD, search."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys import nn, optim
from diffsys import pipeline as pl
from diffsys.systems import augment as A

K = len(A.OPERATIONS)


def _images(rng, b=3, c=1, n=6):
    return rng.random((b, c, n, n))


@pytest.mark.parametrize("op", A.OPERATIONS)
def test_operations_against_the_exact_image_by_image_reference(op, rng):
    x = _images(rng, b=4, c=2)
    u = rng.uniform(-1, 1, 4)
    got = A.apply_operation(op, x, 0.8, u)
    ref = np.stack([A.transform_image(x[b], op, 0.8, u[b]) for b in range(4)])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    if op != "blur":  # magnitude 0 is the identity (blur keeps a floor sigma of 0.05)
        np.testing.assert_allclose(A.apply_operation(op, x, 0.0, u), x, atol=1e-15)


@pytest.mark.parametrize("op", A.OPERATIONS)
def test_operation_gradients(op, rng):
    x = _images(rng, b=2)
    u = np.array([0.63, -0.41])
    order = 2 if op in ("blur", "brightness", "contrast") else 1
    ds.check_grads(lambda x, m: A.apply_operation(op, x, m, u), (x, 0.37), order=order)


def _policy_args(rng, s=2, b=5):
    logits, probs, mags = (rng.normal(size=(s, K)) for _ in range(3))
    return logits, probs, mags, A.draw_noise(rng, s, b, K)


def test_hard_policy_is_the_exact_sampled_policy(rng):
    x = _images(rng, b=5)
    logits, probs, mags, noise = _policy_args(rng)
    hard = A.apply_policy.hard(x, logits, probs, mags, noise)
    exact = A.apply_policy_exact(x, logits, probs, mags, noise)
    np.testing.assert_allclose(hard, exact, rtol=1e-12, atol=1e-12)
    choice, applied = A.sample_decisions(logits, probs, noise)
    assert choice.shape == applied.shape == (2, 5)
    untouched = ~applied.any(axis=0)
    np.testing.assert_array_equal(hard[untouched], x[untouched])


def test_relaxed_policy_converges_to_the_hard_one(rng):
    x = _images(rng, b=5)
    args = (x, *_policy_args(rng))
    gaps = [A.apply_policy.gap(*args, temperature=t) for t in (1.0, 0.3, 0.1, 0.01, 0.001)]
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-8 < gaps[0]


def test_relaxed_policy_gradients(rng):
    x = _images(rng, b=2)
    logits, probs, mags, noise = _policy_args(rng, s=1, b=2)
    ops = ("rotate", "blur", "contrast")
    k = [A.OPERATIONS.index(o) for o in ops]
    noise = A.PolicyNoise(*(a[:, :, k] for a in noise))
    f = lambda lg, pr, mg, t: A.apply_policy(x, lg, pr, mg, noise, ops, t)  # noqa: E731
    ds.check_grads(f, (logits[:, k], probs[:, k], mags[:, k], 0.7), order=1)


def test_sampled_decisions_follow_the_policy_probabilities():
    rng = np.random.default_rng(0)
    policy = A.AugmentPolicy(1, ("rotate", "blur", "contrast"))
    policy = policy.replace(logits=np.array([[1.0, 0.0, -1.0]]),
                            prob_logits=np.array([[0.0, 2.0, -2.0]]))
    noise = policy.noise(rng, 40000)
    choice, applied = A.sample_decisions(policy.logits, policy.prob_logits, noise)
    freq = np.array([np.mean((choice[0] == k) & applied[0]) for k in range(3)])
    np.testing.assert_allclose(freq, policy.probabilities()[0], atol=0.01)


def test_mmd(rng):
    a, b = rng.normal(size=(7, 2, 3)), rng.normal(size=(5, 2, 3)) + 0.5
    af, bf = a.reshape(7, -1), b.reshape(5, -1)

    def k(u, v):
        d2 = ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * h * h)).mean() for h in (2.0, 4.0, 8.0))

    assert float(A.mmd(a, b)) == pytest.approx(k(af, af) + k(bf, bf) - 2 * k(af, bf), rel=1e-12)
    assert float(A.mmd(a, a)) == pytest.approx(0.0, abs=1e-12)
    ds.check_grads(lambda a, b: A.mmd(a, b), (a, b), order=2)
    with pytest.raises(ValueError, match="mmd: expected two samples"):
        A.mmd(a, b.reshape(5, 6))


def test_policy_module_forms_and_errors(rng):
    policy = A.AugmentPolicy(2, probability=0.4, magnitude=0.3)
    x = _images(rng, b=3)
    np.testing.assert_array_equal(policy.hard(x), x)
    np.testing.assert_allclose(policy.probabilities().sum(axis=1), [0.4, 0.4])
    np.testing.assert_allclose(policy.magnitudes(), 0.3)
    np.testing.assert_allclose(policy.hard(x, key=3), A.apply_policy_exact(
        x, policy.logits, policy.prob_logits, policy.magnitude_logits, policy.noise(3, 3)))
    assert "translate_x" in policy.table()
    with pytest.raises(TypeError, match=r"AugmentPolicy\(stages=2, ops=8\): the relaxed"):
        policy(x)
    with pytest.raises(ValueError, match="ops must be distinct names"):
        A.AugmentPolicy(1, ("rotate", "warp"))
    with pytest.raises(ValueError, match="noise must be"):
        A.apply_policy(x, policy.logits, policy.prob_logits, policy.magnitude_logits,
                       policy.noise(0, 4))
    with pytest.raises(ValueError, match=r"u must have shape \(B,\)"):
        A.apply_operation("rotate", x, 0.5, np.zeros(2))


def test_policy_stage_mismatch_compares_relaxed_and_sampled(rng):
    policy = A.AugmentPolicy(1, temperature=0.5)
    pipe = pl.Pipeline([A.policy_stage("augment", policy)])
    x = _images(rng, b=4, n=8)
    report = pipe.mismatch({"x": x, "y": np.zeros(4)}, key=5)
    row = report["augment"]
    assert row.kind == "relaxed" and row.max_abs > 0
    sharp = pl.Pipeline([A.policy_stage("augment", policy.replace(temperature=1e-3))])
    assert sharp.mismatch({"x": x, "y": np.zeros(4)}, key=5)["augment"].max_abs < 1e-6


def test_match_objective_finds_the_shift_of_the_validation_images():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 1, 8, 8))
    x[:, 0, 2:6, 2:4] = rng.uniform(0.5, 1.0, (200, 1, 1))
    # the validation images are the same bars jittered left and right: translate_x with a
    # high magnitude produces exactly that distribution, blur and brightness do not
    u = rng.uniform(0.6, 1.0, 200) * rng.choice([-1.0, 1.0], 200)
    shifted = A.apply_operation("translate_x", x, 1.0, u)
    policy = A.AugmentPolicy(1, ("translate_x", "blur", "brightness"), probability=0.3)
    res = A.search_policy(policy, (x, None), (shifted, None), steps=60, batch=50,
                          lr_policy=0.1, seed=0)
    p = res.policy.probabilities()[0]
    assert p[0] > 0.8 and p[0] > 4 * max(p[1], p[2]), p
    assert res.policy.magnitudes()[0, 0] > 0.5  # it grew from 0.3
    h = res.history["val_loss"]
    assert np.mean(h[-5:]) < 0.5 * np.mean(h[:5])


def test_unrolled_objective_hypergradient_and_errors(rng):
    x, y = rng.random((16, 1, 6, 6)), rng.integers(0, 3, 16)
    model = nn.Sequential([nn.Flatten(), nn.Linear(36, 3, key=0)])
    policy = A.AugmentPolicy(1, ("rotate", "contrast"))
    w, rest = nn.partition(model)
    p, prest = nn.partition(policy)
    train = lambda w, p: nn.cross_entropy(  # noqa: E731
        nn.combine(w, rest)(nn.combine(p, prest)(x[:8], key=1)), y[:8])
    val = lambda w, p: nn.cross_entropy(nn.combine(w, rest)(x[8:]), y[8:])  # noqa: E731
    exact = optim.unrolled_hypergradient(train, val, w, p, lr=0.5, method="exact").grad
    fd = optim.unrolled_hypergradient(train, val, w, p, lr=0.5).grad
    for name in ("logits", "prob_logits", "magnitude_logits"):
        e, f = getattr(exact, name), getattr(fd, name)
        assert np.abs(e).max() > 0
        np.testing.assert_allclose(f, e, rtol=1e-3, atol=1e-6 * np.abs(e).max())
    res = A.search_policy(policy, (x, y), (x, y), steps=3, batch=8, objective="unrolled",
                          model=model)
    assert res.model is not None and len(res.history["train_loss"]) == 3
    with pytest.raises(ValueError, match="pass model="):
        A.search_policy(policy, (x, y), (x, y), steps=1, objective="unrolled")
    with pytest.raises(ValueError, match="first-order hypergradient of an augmentation"):
        A.search_policy(policy, (x, y), (x, y), steps=1, objective="unrolled", model=model,
                        method="first_order")


def test_train_classifier_with_and_without_a_policy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    x = np.zeros((60, 1, 6, 6))
    x[np.arange(60), 0, 2 * y, 2] = 1.0
    model = nn.Sequential([nn.Flatten(), nn.Linear(36, 3, key=0)])
    for policy in (None, A.AugmentPolicy(1, ("brightness",), probability=0.5)):
        trained, losses = A.train_classifier(model, x, y, policy=policy, steps=40, batch=20,
                                             lr=0.05)
        assert losses[-1] < 0.3 * losses[0]
        assert np.mean(np.argmax(trained(x), 1) == y) == 1.0
