"""Optimizers against direct implementations of their published update rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim


def _params(rng):
    return {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}


def _grads(rng, k):
    return [{"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)} for _ in range(k)]


def _run(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    return params


def _reference(step, params, grads):
    """Apply ``step(name, p, g, slot, t) -> p`` leaf by leaf with per-leaf slots."""
    slots = {k: {} for k in params}
    p = {k: v.copy() for k, v in params.items()}
    for t, g in enumerate(grads, start=1):
        for k in p:
            p[k] = step(p[k], g[k], slots[k], t)
    return p


def _assert_same(a, b):
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_adam_matches_the_formula_exactly(rng):
    params, grads = _params(rng), _grads(rng, 5)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8

    def step(p, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1.0 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1.0 - b2) * (g * g)
        mhat = s["m"] / (1.0 - b1**t)
        vhat = s["v"] / (1.0 - b2**t)
        return p + -lr * (mhat / (np.sqrt(vhat + 0.0) + eps))

    _assert_same(_run(optim.adam(lr), params, grads), _reference(step, params, grads))


def test_adamw_decays_decoupled_and_respects_the_mask(rng):
    params, grads = _params(rng), _grads(rng, 4)
    lr, wd = 0.01, 0.1

    def step(p, g, s, t, decay=True):
        s["m"] = 0.9 * s.get("m", 0.0) + (1.0 - 0.9) * g
        s["v"] = 0.999 * s.get("v", 0.0) + (1.0 - 0.999) * (g * g)
        u = (s["m"] / (1.0 - 0.9**t)) / (np.sqrt(s["v"] / (1.0 - 0.999**t) + 0.0) + 1e-8)
        if decay:
            u = u + wd * p
        return p + -lr * u

    _assert_same(
        _run(optim.adamw(lr, weight_decay=wd), params, grads), _reference(step, params, grads)
    )
    masked = _run(optim.adamw(lr, weight_decay=wd, mask=optim.decay_mask_ndim), params, grads)
    ref_b = _reference(lambda p, g, s, t: step(p, g, s, t, decay=False), params, grads)
    np.testing.assert_array_equal(masked["b"], ref_b["b"])
    np.testing.assert_array_equal(masked["w"], _reference(step, params, grads)["w"])


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_pytorch_formula(nesterov, rng):
    params, grads = _params(rng), _grads(rng, 5)
    lr, mu, wd = 0.1, 0.9, 0.01

    def step(p, g, s, t):
        g = g + wd * p
        s["buf"] = mu * s.get("buf", 0.0) + g
        d = g + mu * s["buf"] if nesterov else s["buf"]
        return p + -lr * d

    got = _run(optim.sgd(lr, momentum=mu, nesterov=nesterov, weight_decay=wd), params, grads)
    _assert_same(got, _reference(step, params, grads))


def test_sgd_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    params, grads = _params(rng), _grads(rng, 4)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(tp.values()), lr=0.1, momentum=0.9, nesterov=True)
    for g in grads:
        for k, v in tp.items():
            v.grad = torch.tensor(g[k])
        opt.step()
    got = _run(optim.sgd(0.1, momentum=0.9, nesterov=True), params, grads)
    for k in params:
        np.testing.assert_allclose(got[k], tp[k].detach().numpy(), rtol=1e-14)


def test_rmsprop_adagrad_lion_match_formulas(rng):
    params, grads = _params(rng), _grads(rng, 4)

    def rms(p, g, s, t):
        s["v"] = 0.9 * s.get("v", 0.0) + (1.0 - 0.9) * (g * g)
        s["b"] = 0.5 * s.get("b", 0.0) + g / (np.sqrt(s["v"]) + 1e-8)
        return p + -0.01 * s["b"]

    _assert_same(
        _run(optim.rmsprop(0.01, decay=0.9, momentum=0.5), params, grads),
        _reference(rms, params, grads),
    )

    def ada(p, g, s, t):
        s["a"] = s.get("a", 0.1) + g * g
        return p + -0.5 * (g / (np.sqrt(s["a"]) + 1e-10))

    _assert_same(
        _run(optim.adagrad(0.5, initial_accumulator_value=0.1), params, grads),
        _reference(ada, params, grads),
    )

    def lion(p, g, s, t):
        m = s.get("m", 0.0)
        u = np.sign(0.9 * m + (1.0 - 0.9) * g) + 0.1 * p
        s["m"] = 0.99 * m + (1.0 - 0.99) * g
        return p + -0.01 * u

    _assert_same(
        _run(optim.lion(0.01, weight_decay=0.1), params, grads), _reference(lion, params, grads)
    )


def test_lamb_matches_the_papers_formulas(rng):
    """LAMB as written in You et al. (ICLR 2020), Algorithm 2, in NumPy: PyTorch has no LAMB,
    so this is the reference. The trust ratio is per parameter leaf (the paper's layer)."""
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2), "z": np.zeros(4)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(6)]
    lr, b1, b2, eps, wd = 0.02, 0.9, 0.999, 1e-6, 0.05

    def step(p, g, s, t, decay=True):
        s["m"] = b1 * s.get("m", 0.0) + (1.0 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1.0 - b2) * g**2
        m_hat = s["m"] / (1.0 - b1**t)
        v_hat = s["v"] / (1.0 - b2**t)
        r = m_hat / (np.sqrt(v_hat) + eps)
        u = r + wd * p if decay else r
        p_norm, u_norm = np.linalg.norm(p), np.linalg.norm(u)
        ratio = p_norm / u_norm if p_norm > 0 and u_norm > 0 else 1.0  # "z" starts at zero
        return p - lr * ratio * u

    got = _run(optim.lamb(lr, b1, b2, eps, weight_decay=wd), params, grads)
    want = _reference(step, params, grads)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-13, atol=1e-15)

    # the weight-decay mask: only leaves with two or more axes decay
    masked = _run(optim.lamb(lr, weight_decay=wd, mask=optim.decay_mask_ndim), params, grads)
    want_b = _reference(lambda p, g, s, t: step(p, g, s, t, decay=False), params, grads)
    np.testing.assert_allclose(masked["w"], want["w"], rtol=1e-13)
    np.testing.assert_allclose(masked["b"], want_b["b"], rtol=1e-13)

    # no weight decay; the first step moves every nonzero leaf by exactly lr * ||p||
    first = _run(optim.lamb(lr), params, grads[:1])
    for k in ("w", "b"):
        moved = np.linalg.norm(first[k] - params[k])
        np.testing.assert_allclose(moved, lr * np.linalg.norm(params[k]), rtol=1e-12)


def test_lamb_keeps_float32_and_trains(rng):
    model = nn.astype(
        nn.Sequential([nn.Linear(3, 8, key=0), nn.tanh, nn.Linear(8, 1, key=1)]), np.float32
    )
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = np.sin(x.sum(1, keepdims=True))
    opt = optim.lamb(optim.linear_warmup(0.05, 5), weight_decay=1e-3)
    state = opt.init(model)
    loss = ds.value_and_grad(lambda m: nn.mse(m(x), y))
    first, _ = loss(model)
    for _ in range(100):
        value, g = loss(model)
        updates, state = opt.update(g, state, model)
        model = optim.apply_updates(model, updates)
    assert all(leaf.dtype == np.float32 for leaf in ds.tree_leaves(model))
    assert float(value) < 0.3 * float(first)


def test_adam_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    params, grads = _params(rng), _grads(rng, 6)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(list(tp.values()), lr=0.01)
    for g in grads:
        for k, v in tp.items():
            v.grad = torch.tensor(g[k])
        opt.step()
    got = _run(optim.adam(0.01), params, grads)
    for k in params:
        np.testing.assert_allclose(got[k], tp[k].detach().numpy(), rtol=1e-12)


def test_clip_by_global_norm(rng):
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    out, _ = optim.clip_by_global_norm(1.0).update(g, optim.EmptyState())
    np.testing.assert_allclose(float(optim.global_norm(out)), 1.0)
    np.testing.assert_allclose(out["a"], [0.6, 0.0])
    same, _ = optim.clip_by_global_norm(10.0).update(g, optim.EmptyState())
    assert same is g
    clipped, _ = optim.clip(1.0).update(g, optim.EmptyState())
    np.testing.assert_array_equal(clipped["b"], [[1.0]])


def test_chain_state_and_schedule_counts(rng):
    sched = optim.exponential_decay(1.0, 0.5)
    opt = optim.chain(optim.clip_by_global_norm(100.0), optim.sgd(sched))
    p = {"x": np.ones(2)}
    s = opt.init(p)
    for k in range(3):
        u, s = opt.update({"x": np.ones(2)}, s, p)
        np.testing.assert_allclose(u["x"], -(0.5**k))
    with pytest.raises(TypeError, match="not a GradientTransformation"):
        optim.chain(optim.sgd(0.1), "adam")


def test_schedules_values():
    assert optim.constant(0.3)(100) == 0.3
    lin = optim.linear(1.0, 0.0, 10)
    assert [lin(s) for s in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]
    cos = optim.cosine_decay(2.0, 10, alpha=0.1)
    assert cos(0) == 2.0 and math.isclose(cos(10), 0.2) and math.isclose(cos(5), 1.1)
    exp = optim.exponential_decay(1.0, 0.1, transition_steps=2, staircase=True)
    assert [exp(s) for s in (0, 1, 2, 3)] == [1.0, 1.0, 0.1, 0.1]
    pw = optim.piecewise_constant({3: 0.1, 6: 0.5}, 1.0)
    assert [pw(s) for s in (0, 3, 6)] == [1.0, 0.1, 0.05]
    joined = optim.join_schedules([optim.constant(1.0), optim.linear(0.0, 1.0, 4)], [2])
    assert [joined(s) for s in (0, 1, 2, 4, 6)] == [1.0, 1.0, 0.0, 0.5, 1.0]
    wc = optim.warmup_cosine_decay(1.0, 4, 12, end_value=0.1)
    assert wc(0) == 0.0 and wc(2) == 0.5 and wc(4) == 1.0 and math.isclose(wc(12), 0.1)
    assert math.isclose(optim.linear_warmup(2.0, 4)(1), 0.5)


def test_exponential_decay_end_value_bounds_decay_from_below_and_growth_from_above():
    # Decay (rate < 1): the value falls to end_value and stays there, never below.
    decay = optim.exponential_decay(1.0, 0.5, end_value=0.2)
    assert [decay(s) for s in (0, 1, 2)] == [1.0, 0.5, 0.25]
    assert [decay(s) for s in (3, 4, 50)] == [0.2, 0.2, 0.2]
    # Growth (rate > 1): the value rises to end_value and stays there, never above.
    growth = optim.exponential_decay(1.0, 2.0, end_value=5.0)
    assert [growth(s) for s in (0, 1, 2)] == [1.0, 2.0, 4.0]
    assert [growth(s) for s in (3, 4, 50)] == [5.0, 5.0, 5.0]
    # Without end_value neither direction is bounded.
    assert optim.exponential_decay(1.0, 2.0)(10) == 1024.0
    assert optim.exponential_decay(1.0, 0.5)(10) == 0.5**10
    # A negative init_value flips the direction: rate < 1 rises toward 0, rate > 1 falls.
    rising = optim.exponential_decay(-1.0, 0.5, end_value=-0.3)
    assert [rising(s) for s in (0, 1, 2, 9)] == [-1.0, -0.5, -0.3, -0.3]
    falling = optim.exponential_decay(-1.0, 2.0, end_value=-3.0)
    assert [falling(s) for s in (0, 1, 2, 9)] == [-1.0, -2.0, -3.0, -3.0]
    # A constant rate never moves, so no end_value is behind it and none clamps it.
    for end in (0.5, 3.0):
        assert optim.exponential_decay(1.0, 1.0, end_value=end)(7) == 1.0
    # An end_value behind init_value would pin the schedule there from step 0.
    with pytest.raises(ValueError, match="end_value 2.0 lies behind init_value 1.0.*falls"):
        optim.exponential_decay(1.0, 0.5, end_value=2.0)
    with pytest.raises(ValueError, match="end_value 0.5 lies behind init_value 1.0.*rises"):
        optim.exponential_decay(1.0, 2.0, end_value=0.5)
    with pytest.raises(ValueError, match="decay_rate must be >= 0"):
        optim.exponential_decay(1.0, -0.5)


def test_optimizers_train_a_module_with_frozen_parts(rng):
    model = nn.Sequential([nn.Linear(3, 8, key=0), nn.tanh, nn.Linear(8, 1, key=1)])
    params, frozen = nn.partition(model, frozen="layers.0.*")
    x = rng.standard_normal((32, 3))
    y = np.sin(x.sum(1, keepdims=True))
    opt = optim.adam(0.05)
    state = opt.init(params)

    def loss(p):
        return nn.mse(nn.combine(p, frozen)(x), y)

    first = loss(params)
    for _ in range(50):
        value, g = ds.value_and_grad(loss)(params)
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    assert loss(params) < 0.5 * first
    trained = nn.combine(params, frozen)
    assert trained.layers[0].weight is model.layers[0].weight


def test_apply_updates_keeps_dtype_and_optimizer_is_differentiable():
    p = {"w": np.ones(3, np.float32)}
    opt = optim.adam(0.1)
    u, _ = opt.update({"w": np.ones(3, np.float32)}, opt.init(p), p)
    assert optim.apply_updates(p, u)["w"].dtype == np.float32

    # one SGD step as a function of the learning rate: d/dlr of the loss after a step
    def after_step(lr):
        w = np.array([1.0, -2.0])
        g = 2 * w
        u, _ = optim.sgd(lr).update(g, optim.sgd(lr).init(w), w)
        return dnp.sum(optim.apply_updates(w, u) ** 2)

    lr = np.array(0.1)
    # loss = |w|^2 (1 - 2 lr)^2, so d/dlr = -4 |w|^2 (1 - 2 lr)
    np.testing.assert_allclose(ds.grad(after_step)(lr), -4 * 5.0 * (1 - 0.2), rtol=1e-12)


def test_minimize_rosenbrock_over_a_pytree_and_bounds():
    def rosen(p, a):
        x, y = p["xy"][0], p["xy"][1]
        return (a - x) ** 2 + 100.0 * (y - x**2) ** 2 + p["z"] ** 2

    x0 = {"xy": np.array([-1.2, 1.0]), "z": np.array(3.0)}
    res = optim.minimize(rosen, x0, args=(1.0,))
    assert res.success
    np.testing.assert_allclose(res.x["xy"], [1.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(res.x["z"], 0.0, atol=1e-4)
    res = optim.minimize(rosen, x0, args=(1.0,), bounds=({"xy": None, "z": 1.0}, None))
    np.testing.assert_allclose(res.x["z"], 1.0)
    res = optim.minimize(rosen, x0, method="trust-ncg", args=(1.0,))
    np.testing.assert_allclose(res.x["xy"], [1.0, 1.0], atol=1e-6)
    assert res.x["xy"].dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        optim.minimize(rosen, {"xy": np.array([1, 2]), "z": np.array(1.0)}, args=(1.0,))


@pytest.mark.parametrize(
    "schedule",
    [
        optim.linear(1.0, 0.0, 4, transition_begin=1),
        optim.cosine_decay(1.0, 5, alpha=0.1),
        optim.exponential_decay(1.0, 0.5, staircase=True, end_value=0.2),
        optim.piecewise_constant({2: 0.5, 4: 0.1}, 1.0),
        optim.warmup_cosine_decay(1.0, warmup_steps=2, decay_steps=6),
    ],
)
def test_schedules_follow_a_traced_step_inside_jit(schedule):
    """A jitted optimizer step traces the count: the schedule must be evaluated at each
    replayed step, not frozen at the value it had while tracing (nor refuse the tracer)."""
    import diffsys as ds

    params = {"w": np.array([1.0, -2.0])}
    grads = {"w": np.array([0.5, 0.25])}
    opt = optim.adam(schedule)

    def step(p, s):
        updates, s = opt.update(grads, s, p)
        return optim.apply_updates(p, updates), s

    fast = ds.jit(step)
    p_eager, s_eager = params, opt.init(params)
    p_jit, s_jit = params, opt.init(params)
    for _ in range(7):
        p_eager, s_eager = step(p_eager, s_eager)
        p_jit, s_jit = fast(p_jit, s_jit)
        np.testing.assert_allclose(p_jit["w"], p_eager["w"], rtol=1e-12, atol=1e-15)
    assert fast.cache_info().misses == 1  # traced once, replayed at every later step
    assert [schedule(s) for s in range(3)] == [float(schedule(s)) for s in range(3)]
