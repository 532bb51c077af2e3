"""A learned cost model over schedule features, and the relaxed choice of a whole schedule
(tiles, loop order, layout) optimised through it by gradient.

**Features.** A :class:`FeatureGroup` is a table of features indexed by the options of a few
decisions (e.g. the loop order and the layout give the stride class of each operand in
the innermost loop). The features of a hard configuration are the table entries at its
indices; the features of a *relaxed* configuration, one probability vector per decision,
are the table contracted with those vectors: the expected features when every decision is
drawn independently. They equal the hard features at one-hot vectors, and no group spans
the whole space, so nothing is enumerated.

**Cost model.** ``log seconds = w[0] + features @ w[1:]``, fitted by ridge regression on
standardised features (:func:`fit_schedule_model`): a linear model over hand-designed,
hardware-meaningful features (loop trips, working set against cache sizes, strides), the
kind TVM's and Halide's learned cost models start from.

**Relaxed choice.** Logits per decision; ``p_d = relax.softmax(logits_d, T)`` (or
``relax.gumbel_softmax`` for a sampled relaxation); the relaxed cost is the model at the
expected features; the hard choice is ``argmax`` per decision (:func:`choose_schedule`,
straight-through by default: the hard cost in value, the softmax's derivative), and the gap
between the relaxed cost and the model's cost of that hard choice is reported
(:class:`Choice`).

>>> from diffsys.systems.compiler import MatmulSpace, matmul_features
>>> groups = matmul_features(MatmulSpace(tiles=(16, 64)), 128)
>>> feature_matrix(groups, [(0, 1, 0, 1, 0)]).shape
(1, 20)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import numpy as dnp
from ... import optim
from ...core import value_and_grad
from ...relax import gumbel_softmax, softmax
from .kernels import MatmulSpace

__all__ = [
    "Choice",
    "FeatureGroup",
    "ScheduleModel",
    "choose_schedule",
    "feature_matrix",
    "fit_schedule_model",
    "matmul_features",
    "predict_schedule",
    "relaxed_features",
    "relaxed_schedule_cost",
]

Array = Any
DECISIONS = ("ti", "tj", "tk", "order", "layout")


@dataclass(frozen=True)
class FeatureGroup:
    """Features that depend on the ``decisions`` named (a subset of the space's, in order):
    ``table`` has one axis per decision (its options) and a last axis of features."""

    decisions: tuple[str, ...]
    table: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self):
        if self.table.ndim != len(self.decisions) + 1 or self.table.shape[-1] != len(self.names):
            raise ValueError(
                f"FeatureGroup{self.decisions}: table must have one axis per decision and a "
                f"last axis of {len(self.names)} features, got shape {self.table.shape}"
            )


_CACHE_SIZES = (32 * 1024, 256 * 1024, 2 * 1024 * 1024)  # typical L1d, L2, L3 slice (bytes)


def _stride_class(var: str, operand: str, layout_flag: str) -> str:
    """How ``operand`` (``"A"``: indices i, k; ``"B"``: k, j; ``"C"``: i, j, row-major) is
    walked when loop variable ``var`` moves: ``"contiguous"``, ``"strided"`` or
    ``"invariant"``."""
    rows, cols = {"A": ("i", "k"), "B": ("k", "j"), "C": ("i", "j")}[operand]
    fast = cols if layout_flag == "n" else rows  # the index that moves along memory
    if var not in (rows, cols):
        return "invariant"
    return "contiguous" if var == fast else "strided"


def matmul_features(space: MatmulSpace, n: int) -> list[FeatureGroup]:
    """The features of an ``n x n`` blocked matrix multiply's schedule (20 in 4 groups):

    - tiles: log of the number of tile visits; log working set of one tile step (bytes of
      the three blocks); how far it passes each of three cache sizes (``max(0, log ws -
      log size)``);
    - order and layout: for the innermost and the next loop, whether each of ``A``, ``B``,
      ``C`` is walked contiguously or with a stride (12 indicators);
    - order and tiles: log trip count of the innermost and the next loop;
    - layout: number of operands packed transposed (the packing's cost).
    """
    t = np.asarray(space.tiles, dtype=np.float64)
    eff = np.minimum(t, n)
    ti, tj, tk = np.meshgrid(eff, eff, eff, indexing="ij")
    visits = np.log(np.ceil(n / ti) * np.ceil(n / tj) * np.ceil(n / tk))
    ws = np.log(8.0 * (ti * tk + tk * tj + ti * tj))
    tiles = np.stack([visits, ws, *(np.maximum(0.0, ws - np.log(c)) for c in _CACHE_SIZES)], -1)
    tile_group = FeatureGroup(
        ("ti", "tj", "tk"), tiles,
        ("log tile visits", "log working set", "past 32K", "past 256K", "past 2M"),
    )  # fmt: skip

    names, ol = [], np.zeros((len(space.orders), len(space.layouts), 12))
    for label in ("inner", "next"):
        for op in "ABC":
            names += [f"{label} {op} contiguous", f"{label} {op} strided"]
    for o, order in enumerate(space.orders):
        for lay, layout in enumerate(space.layouts):
            flags = {"A": layout[0], "B": layout[1], "C": "n"}
            col = 0
            for depth in (1, 2):
                var = order[-depth]
                for op in "ABC":
                    cls = _stride_class(var, op, flags[op])
                    ol[o, lay, col] = cls == "contiguous"
                    ol[o, lay, col + 1] = cls == "strided"
                    col += 2
    order_layout = FeatureGroup(("order", "layout"), ol, tuple(names))

    trips = np.zeros((len(space.orders), len(t), len(t), len(t), 2))
    logt = np.log(eff)
    for o, order in enumerate(space.orders):
        for depth in (1, 2):
            axis = "ijk".index(order[-depth])
            shape = [1, 1, 1]
            shape[axis] = len(t)
            trips[o, ..., depth - 1] = np.broadcast_to(logt.reshape(shape), (len(t),) * 3)
    order_tiles = FeatureGroup(("order", "ti", "tj", "tk"), trips,
                               ("log inner trips", "log next trips"))  # fmt: skip
    packed = np.array([[layout.count("t")] for layout in space.layouts], dtype=np.float64)
    layout_group = FeatureGroup(("layout",), packed, ("packed operands",))
    return [tile_group, order_layout, order_tiles, layout_group]


def _feature_names(groups: Sequence[FeatureGroup]) -> list[str]:
    return [name for g in groups for name in g.names]


def feature_matrix(
    groups: Sequence[FeatureGroup], indices: Sequence[Sequence[int]]
) -> np.ndarray:
    """Hard features ``(m, F)`` of configurations given as index tuples (in
    ``("ti", "tj", "tk", "order", "layout")`` order)."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1, len(DECISIONS))
    cols = []
    for g in groups:
        at = tuple(idx[:, DECISIONS.index(d)] for d in g.decisions)
        cols.append(g.table[at])
    return np.concatenate(cols, axis=1)


def relaxed_features(groups: Sequence[FeatureGroup], probs: Mapping[str, Array]) -> Array:
    """Expected features ``(F,)`` when decision ``d`` takes option ``k`` with probability
    ``probs[d][k]``, independently; the hard features at one-hot ``probs``."""
    out = []
    for g in groups:
        t = g.table
        for d in g.decisions:
            t = dnp.tensordot(probs[d], t, axes=1)
        out.append(t)
    return dnp.concatenate(out)


@dataclass(frozen=True)
class ScheduleModel:
    """A fitted cost model: ``log s = bias + ((x - mean) / scale) @ coef``."""

    bias: float
    coef: np.ndarray
    mean: np.ndarray
    scale: np.ndarray


def fit_schedule_model(
    features: np.ndarray, seconds: np.ndarray, *, ridge: float = 1.0
) -> ScheduleModel:
    """Ridge regression of ``log(seconds)`` on standardised ``features`` ``(m, F)``
    (closed form; ``ridge`` on the coefficients, not the bias)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.log(np.asarray(seconds, dtype=np.float64))
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError(
            f"fit_schedule_model: features must be (m, F) with m = len(seconds) > 0, got "
            f"{x.shape} and {y.shape}"
        )
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    bias = float(y.mean())
    coef = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (y - bias))
    return ScheduleModel(bias, coef, mean, scale)


def predict_schedule(model: ScheduleModel, features: Array) -> Array:
    """The model's log seconds of features ``(F,)`` or ``(m, F)`` (hard or relaxed)."""
    return model.bias + dnp.matmul((features - model.mean) / model.scale, model.coef)


def relaxed_schedule_cost(
    logits: Mapping[str, Array],
    model: ScheduleModel,
    groups: Sequence[FeatureGroup],
    temperature: float | Array = 1.0,
    *,
    rng: np.random.Generator | int | None = None,
    straight_through: bool = False,
) -> Array:
    """The model's log seconds at the relaxed schedule: ``relax.softmax(logits_d, T)`` per
    decision, or ``relax.gumbel_softmax(logits_d, T, rng=rng)`` when ``rng`` is given.
    ``straight_through=True``: the hard one-hot choice in value (the model's cost of the
    argmax, or of the Gumbel sample), the relaxation's derivative."""
    if rng is None:
        if straight_through:
            probs = {d: softmax.straight_through(v, temperature) for d, v in logits.items()}
        else:
            probs = {d: softmax(v, temperature) for d, v in logits.items()}
    else:
        probs = {d: gumbel_softmax(v, temperature, rng=rng, hard=straight_through)
                 for d, v in logits.items()}  # fmt: skip
    return predict_schedule(model, relaxed_features(groups, probs))


@dataclass(frozen=True)
class Choice:
    """The hard choice (``index``), the relaxed cost where the gradient stopped
    (``relaxed``, at the final temperature, no noise), the model's cost of the hard choice
    (``hard``) and their ``gap`` (log seconds)."""

    index: tuple[int, ...]
    relaxed: float
    hard: float

    @property
    def gap(self) -> float:
        return abs(self.relaxed - self.hard)


def choose_schedule(
    model: ScheduleModel,
    groups: Sequence[FeatureGroup],
    sizes: Sequence[int],
    *,
    steps: int = 40,
    temperature: tuple[float, float] = (1.0, 1.0),
    learning_rate: float = 0.3,
    straight_through: bool = True,
    gumbel: bool = False,
    seed: int = 0,
) -> Choice:
    """Adam on :func:`relaxed_schedule_cost` over per-decision logits (from small random
    logits), the temperature going geometrically from ``temperature[0]`` to
    ``temperature[1]``; the hard choice is the argmax per decision.

    ``straight_through`` (the default) descends the hard cost with the softmax's
    derivative. Plain softmax with annealing (``straight_through=False, temperature=(1.0,
    0.05)``) saturates: the softmax's derivative vanishes before the logits reach a
    configuration no single change improves (measured in docs/compiler.md)."""
    if len(sizes) != len(DECISIONS):
        raise ValueError(f"choose_schedule: sizes must give {DECISIONS}, got {tuple(sizes)}")
    rng = np.random.default_rng(seed)
    logits = {d: 0.1 * rng.normal(size=k) for d, k in zip(DECISIONS, sizes, strict=True)}
    opt = optim.adam(learning_rate)
    state = opt.init(logits)
    t0, t1 = temperature
    noise = rng if gumbel else None

    def cost(lg, t):
        return relaxed_schedule_cost(lg, model, groups, t, rng=noise,
                                     straight_through=straight_through)  # fmt: skip

    vg = value_and_grad(cost)
    for s in range(steps):
        t = t0 * (t1 / t0) ** (s / max(steps - 1, 1))
        _, g = vg(logits, t)
        updates, state = opt.update(g, state, logits)
        logits = {d: np.asarray(v) for d, v in optim.apply_updates(logits, updates).items()}
    index = tuple(int(np.argmax(logits[d])) for d in DECISIONS)
    relaxed = float(relaxed_schedule_cost(logits, model, groups, t1))
    hard = float(predict_schedule(model, feature_matrix(groups, [index])[0]))
    return Choice(index, relaxed, hard)
