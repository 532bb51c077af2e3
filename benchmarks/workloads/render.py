"""2-D soft rasterization (``diffsys.systems.render.rasterize``), forward + backward.

A scene of discs (random centres, radii, colours, opacities; seed 0) is soft-rasterized
(``sigma = 0.5`` px, culling margin 8 sigma) and the gradient of ``sum((image - target)^2)``
with respect to every centre, radius, colour and opacity is taken, at 64, 128 and 256 px
(the disc count grows with the image side, so the pairs grow with the area). Every framework
evaluates the same pixel-disc pairs (the bounding-box culling and depth-rank plan of
``diffsys.systems.render.exact``, plain NumPy, run inside the timed call); the NumPy row
(also the reference) differentiates by hand. A dense row (``margin=None``: every pixel
against every disc, the SoftRas algorithm) times diffsys at 128 px with its peak memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._spec import Impl, Thunk, Workload

SIGMA = 0.5
MARGIN = 8.0
TINY = 1e-12


def _inputs(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = size // 2
    return {
        "center": rng.uniform(0, size, (n, 2)),
        "radius": rng.uniform(size / 32, size / 10, n),
        "color": rng.uniform(0, 1, (n, 3)),
        "opacity": rng.uniform(0.3, 0.9, n),
        "target": rng.uniform(0, 1, (size, size, 3)),
    }


def _plan(center, radius, size, margin=MARGIN):
    from diffsys.systems.render.exact import bbox_pairs, layer_plan

    grow = np.inf if margin is None else margin * SIGMA
    if np.isinf(grow):
        shape = np.repeat(np.arange(len(radius)), size * size)
        pixel = np.tile(np.arange(size * size), len(radius))
    else:
        shape, pixel = bbox_pairs(center - radius[:, None] - grow, center + radius[:, None] + grow,
                                  size, size)
    plan = layer_plan(pixel, size * size)
    order = plan.order
    y, x = np.divmod(pixel[order], size)
    return shape[order], np.stack([x + 0.5, y + 0.5], -1), plan


def numpy_render_vjp(inp: dict[str, np.ndarray], size: int):
    """Image and the gradients of ``sum((image - target)^2)``, by hand (the reference)."""
    c, r, col, op = inp["center"], inp["radius"], inp["color"], inp["opacity"]
    shape, p, plan = _plan(c, r, size)
    diff = p - c[shape]
    norm = np.sqrt(np.sum(diff * diff, -1) + TINY)
    s = 1 / (1 + np.exp(-(r[shape] - norm) / SIGMA))
    a = op[shape] * s
    cc = col[shape]
    b = plan.bounds
    below = np.empty_like(cc)  # the composite under each pair
    cur = np.zeros((len(plan.pixels), 3))
    for k in range(plan.depth):
        sl = slice(b[k], b[k + 1])
        n = b[k + 1] - b[k]
        below[sl] = cur[:n]
        cur[:n] = cur[:n] * (1 - a[sl, None]) + a[sl, None] * cc[sl]
    image = np.concatenate([cur, np.zeros((1, 3))])[plan.where].reshape(size, size, 3)
    g_img = 2 * (image - inp["target"]).reshape(-1, 3)
    g = g_img[plan.pixels]  # d loss / d out_k for the pixels' top pair, then walked down
    ga = np.empty_like(a)
    gcol = np.empty_like(cc)
    for k in reversed(range(plan.depth)):
        sl = slice(b[k], b[k + 1])
        n = b[k + 1] - b[k]
        gk = g[:n]
        ga[sl] = np.sum(gk * (cc[sl] - below[sl]), -1)
        gcol[sl] = gk * a[sl, None]
        g[:n] = gk * (1 - a[sl, None])
    gd = ga * op[shape] * s * (1 - s) / SIGMA
    m = len(r)
    g_op = np.bincount(shape, ga * s, m)
    g_r = np.bincount(shape, gd, m)
    unit = diff / norm[:, None]
    g_c = np.stack([np.bincount(shape, gd * unit[:, i], m) for i in range(2)], -1)
    g_col = np.stack([np.bincount(shape, gcol[:, i], m) for i in range(3)], -1)
    return image, g_c, g_r, g_col, g_op


def _diffsys(size: int, margin: float | None = MARGIN) -> Thunk:
    import diffsys as ds
    import diffsys.numpy as dnp
    from diffsys.systems import render as R

    inp = _inputs(size)
    target = inp["target"]

    def loss(c, r, col, op):
        image = R.rasterize(R.Circles(c, r, col, op), (size, size), SIGMA, margin=margin)
        return dnp.sum((image - target) ** 2), image

    fn = ds.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)

    def run() -> Any:
        (_, image), grads = fn(inp["center"], inp["radius"], inp["color"], inp["opacity"])
        return (image, *grads)

    return run


def _numpy(size: int) -> Thunk:
    inp = _inputs(size)
    return lambda: numpy_render_vjp(inp, size)


def _torch(size: int) -> Thunk:
    from ._common import torch_single_thread

    torch = torch_single_thread()
    inp = _inputs(size)
    leaves = [torch.tensor(inp[k], requires_grad=True)
              for k in ("center", "radius", "color", "opacity")]
    target = torch.tensor(inp["target"])

    def run() -> Any:
        c, r, col, op = leaves
        shape, p, plan = _plan(inp["center"], inp["radius"], size)
        shape_t = torch.from_numpy(shape)
        diff = torch.from_numpy(p) - c[shape_t]
        norm = torch.sqrt((diff * diff).sum(-1) + TINY)
        a = op[shape_t] * torch.sigmoid((r[shape_t] - norm) / SIGMA)
        cc = col[shape_t]
        b = plan.bounds
        pieces = []
        cur = torch.zeros((len(plan.pixels), 3), dtype=torch.float64)
        for k in range(plan.depth):
            ak = a[b[k] : b[k + 1], None]
            new = cur * (1 - ak) + ak * cc[b[k] : b[k + 1]]
            n_next = b[k + 2] - b[k + 1] if k + 1 < plan.depth else 0
            pieces.append(new[n_next:])
            cur = new[:n_next]
        rows = torch.cat([*reversed(pieces), torch.zeros((1, 3), dtype=torch.float64)])
        image = rows[torch.from_numpy(plan.where)].reshape(size, size, 3)
        loss = ((image - target) ** 2).sum()
        grads = torch.autograd.grad(loss, leaves)
        return (image, *grads)

    return run


def _workload(size: int) -> Workload:
    n = size // 2
    return Workload(
        name=f"render2d_{size}",
        title=f"2-D soft rasterizer {size}x{size}, {n} discs, forward + backward",
        description=(
            f"`rasterize(Circles(...), ({size}, {size}), 0.5)` of {n} random discs (seed 0), then "
            "the gradient of `sum((image - target)^2)` to centres, radii, colours and "
            "opacities. Every row evaluates the same culled pixel-disc pairs (bounding box + "
            "8 sigma; the NumPy culling and depth-rank plan run inside each timed call); "
            "PyTorch runs the same soft rasterizer in eager mode; the NumPy row "
            "differentiates by hand and is the reference. Peak memory: tracemalloc (NumPy "
            "arrays; it does not see PyTorch's allocator)."
        ),
        unit="ms",
        scale=1e3,
        target=float("inf"),
        reference=lambda: numpy_render_vjp(_inputs(size), size),
        impls={
            "diffsys": Impl(lambda: _diffsys(size), "`ds.value_and_grad(rasterize)`"),
            "numpy": Impl(lambda: _numpy(size), "NumPy, hand-written VJP, same pairs"),
            "torch": Impl(lambda: _torch(size), "same algorithm in torch, `autograd.grad`"),
        },
        tolerance=1e-9,
        own_target=True,
        memory=True,
    )


SCALING = [_workload(size) for size in (64, 128, 256)]


def _dense_reference(size: int) -> tuple[np.ndarray, ...]:
    import diffsys as ds  # noqa: F401 - the dense result is diffsys's own, checked in tests

    return _diffsys(size, margin=None)()


WORKLOAD_DENSE = Workload(
    name="render2d_dense_128",
    title="2-D soft rasterizer 128x128, dense (every pixel x every disc)",
    description=(
        "The same scene and loss as the 128 px point of the scaling series, with `margin=None`: "
        "every pixel against every disc, the dense algorithm SoftRas runs (64 discs x 16,384 "
        "pixels = 1,048,576 pairs against the culled pairs). Peak memory (tracemalloc) beside "
        "the time; the reference is the dense result itself (its agreement with an "
        "independent dense rasterizer is a unit test)."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    reference=lambda: _dense_reference(128),
    impls={"diffsys": Impl(lambda: _diffsys(128, margin=None), "`rasterize(margin=None)`")},
    own_target=True,
    memory=True,
)
