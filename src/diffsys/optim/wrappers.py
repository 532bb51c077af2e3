"""Transformations of transformations, as Optax has them: apply one to some leaves only
(:func:`masked`), a different one per label (:func:`multi_transform`), accumulate gradients
over several calls (:class:`MultiSteps`), skip non-finite steps (:func:`apply_if_finite`),
and keep hyperparameters in the state (:func:`inject_hyperparams`).

Masks and labels are pytrees shaped like the parameters, or a *prefix* of them (one label
for a whole sub-tree: ``{"encoder": "slow", "head": "fast"}`` over a dict of modules), or a
function ``params -> such a tree``. Leaves that a mask leaves out are ``None`` inside the
wrapped transformation, so its state holds nothing for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..core.pytree import tree_flatten, tree_leaves, tree_map, tree_structure, tree_unflatten
from .base import GradientTransformation, tree_zeros_like

__all__ = [
    "ApplyIfFiniteState",
    "InjectHyperparamsState",
    "MaskedState",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransformState",
    "apply_if_finite",
    "inject_hyperparams",
    "masked",
    "multi_transform",
]


# --- masks and labels ----------------------------------------------------------------------------


def _is_leaf(x) -> bool:
    return tree_structure(x).node_type is None


def _expand(prefix, tree, who: str, path: str = "") -> Any:
    """``prefix`` (a tree of mask/label leaves shaped like ``tree`` or like its top levels)
    broadcast to one value per leaf of ``tree``, as a tree of ``tree``'s structure."""
    if _is_leaf(prefix):
        return tree_map(lambda _: prefix, tree)
    if isinstance(prefix, Mapping) and isinstance(tree, Mapping):
        if set(prefix) != set(tree):
            raise ValueError(
                f"{who}: the mask/labels at {path or 'the top'} have keys "
                f"{sorted(map(str, prefix))} but the parameters have {sorted(map(str, tree))}"
            )
        out = {k: _expand(prefix[k], tree[k], who, f"{path}[{k!r}]") for k in tree}
        return out if type(tree) is dict else type(tree)(out)
    if type(prefix) in (list, tuple) and type(tree) is type(prefix) and len(prefix) == len(tree):
        out = [
            _expand(p, t, who, f"{path}[{i}]")
            for i, (p, t) in enumerate(zip(prefix, tree, strict=True))
        ]
        return type(tree)(out)
    p_def, t_def = tree_structure(prefix), tree_structure(tree)
    if p_def.num_leaves != t_def.num_leaves:
        raise ValueError(
            f"{who}: the mask/labels at {path or 'the top'} have {p_def.num_leaves} leaves but "
            f"the parameters have {t_def.num_leaves} (give one per parameter leaf, one for a "
            "whole sub-tree, or a function of the parameters; inside a module, Python bools "
            "and strings are static fields: build the tree with ds.tree_map(fn, params))"
        )
    return tree_unflatten(t_def, tree_leaves(prefix))


def _resolve(spec, tree, who: str) -> list:
    """One mask/label value per leaf of ``tree`` (in ``tree_leaves`` order)."""
    value = spec(tree) if callable(spec) else spec
    return tree_leaves(_expand(value, tree, who))


def _select(tree, keep: list):
    """``tree`` with the leaves whose ``keep`` entry is false replaced by ``None``."""
    leaves, treedef = tree_flatten(tree)
    return tree_unflatten(treedef, [x if k else None for x, k in zip(leaves, keep, strict=True)])


def _merge(tree, keep: list, new):
    """``tree`` with the kept leaves taken, in order, from the leaves of ``new``."""
    leaves, treedef = tree_flatten(tree)
    fresh = iter(tree_leaves(new))
    return tree_unflatten(
        treedef, [next(fresh) if k else x for x, k in zip(leaves, keep, strict=True)]
    )


# --- masked --------------------------------------------------------------------------------------


class MaskedState(NamedTuple):
    inner_state: Any


def masked(
    inner: GradientTransformation, mask: Any | Callable[[Any], Any]
) -> GradientTransformation:
    """Apply ``inner`` to the leaves where ``mask`` is true; the others pass unchanged.

    ``mask``: booleans shaped like the parameters (or a prefix of them), or a function of
    the parameters (of the updates, in ``update``) that returns one.

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.masked(optim.scale(10.0), {"w": True, "b": False})
    >>> g = {"w": np.array([1.0]), "b": np.array([1.0])}
    >>> opt.update(g, opt.init(g))[0]
    {'b': array([1.]), 'w': array([10.])}
    """
    if not isinstance(inner, GradientTransformation):
        raise TypeError(f"masked: inner is a {type(inner).__name__}, not a GradientTransformation")

    def init(params):
        keep = [bool(np.all(k)) for k in _resolve(mask, params, "masked")]
        return MaskedState(inner.init(_select(params, keep)))

    def update(updates, state, params=None):
        keep = [bool(np.all(k)) for k in _resolve(mask, updates, "masked")]
        sub_params = None if params is None else _select(params, keep)
        new, inner_state = inner.update(_select(updates, keep), state.inner_state, sub_params)
        return _merge(updates, keep, new), MaskedState(inner_state)

    return GradientTransformation(init, update)


# --- multi_transform -----------------------------------------------------------------------------


class MultiTransformState(NamedTuple):
    inner_states: dict


def multi_transform(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any | Callable[[Any], Any],
) -> GradientTransformation:
    """A different transformation per group of parameters: ``param_labels`` gives each leaf
    (or sub-tree) a label, ``transforms[label]`` updates the leaves with that label. Each
    label's state covers its own leaves only.

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.multi_transform(
    ...     {"fast": optim.sgd(1.0), "frozen": optim.set_to_zero()},
    ...     {"w": "fast", "b": "frozen"})
    >>> g = {"w": np.array([2.0]), "b": np.array([2.0])}
    >>> opt.update(g, opt.init(g))[0]
    {'b': array([0.]), 'w': array([-2.])}
    """
    transforms = dict(transforms)
    for label, t in transforms.items():
        if not isinstance(t, GradientTransformation):
            raise TypeError(
                f"multi_transform: transforms[{label!r}] is a {type(t).__name__}, not a "
                "GradientTransformation"
            )

    def labels_of(tree) -> list:
        labels = _resolve(param_labels, tree, "multi_transform")
        missing = sorted({str(x) for x in labels if x not in transforms})
        if missing:
            raise ValueError(
                f"multi_transform: parameters are labelled {missing} but transforms has only "
                f"{sorted(map(str, transforms))}: add a transformation for each label "
                "(optim.identity() leaves a group unchanged, optim.set_to_zero() freezes it)"
            )
        return labels

    def init(params):
        labels = labels_of(params)
        return MultiTransformState(
            {
                label: t.init(_select(params, [x == label for x in labels]))
                for label, t in transforms.items()
            }
        )

    def update(updates, state, params=None):
        labels = labels_of(updates)
        new_states = {}
        for label, t in transforms.items():
            keep = [x == label for x in labels]
            sub_params = None if params is None else _select(params, keep)
            new, new_states[label] = t.update(
                _select(updates, keep), state.inner_states[label], sub_params
            )
            updates = _merge(updates, keep, new)
        return updates, MultiTransformState(new_states)

    return GradientTransformation(init, update)


# --- MultiSteps ----------------------------------------------------------------------------------


class MultiStepsState(NamedTuple):
    mini_step: Any  # calls since the last real update, 0 .. k-1
    gradient_step: Any  # real updates so far
    inner_opt_state: Any
    acc_grads: Any


class MultiSteps(GradientTransformation):
    """Gradient accumulation: the inner optimizer steps once every ``every_k_schedule``
    calls, on the mean (or, with ``use_grad_mean=False``, the sum) of the gradients of
    those calls; the other calls return zero updates and leave its state alone.

    ``every_k_schedule``: an int, or a function ``gradient_step -> k``. A ``MultiSteps`` is
    a :class:`GradientTransformation` (it chains, and a pipeline or ``fit`` takes it), with
    :meth:`has_updated` besides.

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.MultiSteps(optim.sgd(1.0), every_k_schedule=2)
    >>> state = opt.init(np.zeros(1))
    >>> u, state = opt.update(np.array([1.0]), state)
    >>> u, opt.has_updated(state)
    (array([0.]), False)
    >>> u, state = opt.update(np.array([3.0]), state)
    >>> u, opt.has_updated(state)
    (array([-2.]), True)
    """

    def __new__(
        cls,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[Any], Any],
        use_grad_mean: bool = True,
    ) -> MultiSteps:
        if not isinstance(opt, GradientTransformation):
            raise TypeError(
                f"MultiSteps: opt is a {type(opt).__name__}, not a GradientTransformation"
            )
        if not callable(every_k_schedule) and int(every_k_schedule) < 1:
            raise ValueError(f"MultiSteps: every_k_schedule must be >= 1, got {every_k_schedule}")

        def k_at(gradient_step) -> int:
            s = every_k_schedule
            k = int(s(gradient_step)) if callable(s) else int(s)
            if k < 1:
                raise ValueError(
                    f"MultiSteps: every_k_schedule({int(gradient_step)}) = {k}, need >= 1"
                )
            return k

        def init(params) -> MultiStepsState:
            zero = np.zeros((), dtype=np.int64)
            return MultiStepsState(zero, zero, opt.init(params), tree_zeros_like(params))

        def update(updates, state: MultiStepsState, params=None):
            mini = int(state.mini_step)
            if use_grad_mean:  # a running mean: acc + (g - acc) / (calls so far)
                acc = tree_map(lambda a, g: a + (g - a) / (mini + 1), state.acc_grads, updates)
            else:
                acc = tree_map(lambda a, g: a + g, state.acc_grads, updates)
            if mini + 1 < k_at(state.gradient_step):
                new_state = state._replace(mini_step=np.asarray(mini + 1, np.int64), acc_grads=acc)
                return tree_zeros_like(updates), new_state
            out, inner = opt.update(acc, state.inner_opt_state, params)
            return out, MultiStepsState(
                np.zeros((), np.int64),
                np.asarray(int(state.gradient_step) + 1, np.int64),
                inner,
                tree_zeros_like(acc),
            )

        return super().__new__(cls, init, update)

    @staticmethod
    def has_updated(state: MultiStepsState) -> bool:
        """Whether the last ``update`` stepped the inner optimizer."""
        return int(state.mini_step) == 0 and int(state.gradient_step) > 0

    def gradient_transformation(self) -> GradientTransformation:
        """The same as a plain ``GradientTransformation`` pair (Optax's spelling)."""
        return GradientTransformation(self.init, self.update)


# --- apply_if_finite -----------------------------------------------------------------------------


class ApplyIfFiniteState(NamedTuple):
    notfinite_count: Any  # consecutive non-finite steps
    last_finite: Any
    total_notfinite: Any
    inner_state: Any


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in tree_leaves(tree))


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformation:
    """Skip steps whose gradients hold a NaN or Inf: the update is zero and ``inner``'s
    state stays as it was. After more than ``max_consecutive_errors`` bad steps in a row the
    update goes through anyway (so a run that is broken for good shows it).

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.apply_if_finite(optim.sgd(1.0), max_consecutive_errors=3)
    >>> u, state = opt.update(np.array([np.nan]), opt.init(np.zeros(1)))
    >>> u, int(state.total_notfinite)
    (array([0.]), 1)
    """
    if not isinstance(inner, GradientTransformation):
        raise TypeError(
            f"apply_if_finite: inner is a {type(inner).__name__}, not a GradientTransformation"
        )

    def init(params):
        zero = np.zeros((), np.int64)
        return ApplyIfFiniteState(zero, np.bool_(True), zero, inner.init(params))

    def update(updates, state, params=None):
        finite = _all_finite(updates)
        count = 0 if finite else int(state.notfinite_count) + 1
        total = int(state.total_notfinite) + (0 if finite else 1)
        if finite or count > max_consecutive_errors:
            out, inner_state = inner.update(updates, state.inner_state, params)
        else:
            out, inner_state = tree_zeros_like(updates), state.inner_state
        return out, ApplyIfFiniteState(
            np.asarray(count, np.int64), np.bool_(finite), np.asarray(total, np.int64), inner_state
        )

    return GradientTransformation(init, update)


# --- inject_hyperparams --------------------------------------------------------------------------


class InjectHyperparamsState(NamedTuple):
    count: Any
    hyperparams: dict  # name -> 0-d array; change an entry between steps to change the value
    inner_state: Any


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | tuple[str, ...] = (),
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so that its numeric arguments live in the state:
    ``state.hyperparams["learning_rate"]`` can be read and changed between steps. An
    argument given as a function (a schedule) is evaluated at the step count each step and
    its value stored there. Booleans, ``None``, other objects and the names in
    ``static_args`` stay fixed. Only the arguments passed are injected (not the defaults).

    >>> import numpy as np
    >>> from diffsys import optim
    >>> opt = optim.inject_hyperparams(optim.sgd)(learning_rate=0.1)
    >>> state = opt.init(np.zeros(1))
    >>> state.hyperparams["learning_rate"] = np.asarray(0.5)
    >>> opt.update(np.array([1.0]), state)[0]
    array([-0.5])
    """
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    signature = inspect.signature(inner_factory)

    def wrapped(*args, **kwargs) -> GradientTransformation:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            name = getattr(inner_factory, "__name__", "the factory")
            raise TypeError(f"inject_hyperparams({name}): {exc}") from None
        fixed, numeric, schedules = {}, {}, {}
        for name, value in bound.arguments.items():
            if name in static or isinstance(value, bool | np.bool_) or value is None:
                fixed[name] = value
            elif callable(value):
                schedules[name] = value
            elif isinstance(value, int | float | np.ndarray | np.generic):
                numeric[name] = value
            else:
                fixed[name] = value

        def values_at(count, hyperparams) -> dict:
            out = dict(hyperparams)
            out.update({k: np.asarray(s(count)) for k, s in schedules.items()})
            return out

        def build(hyperparams) -> GradientTransformation:
            return inner_factory(**fixed, **hyperparams)

        def init(params):
            count = np.zeros((), np.int64)
            hp = values_at(count, {k: np.asarray(v) for k, v in numeric.items()})
            return InjectHyperparamsState(count, hp, build(hp).init(params))

        def update(updates, state, params=None):
            hp = values_at(state.count, state.hyperparams)
            out, inner_state = build(hp).update(updates, state.inner_state, params)
            return out, InjectHyperparamsState(
                np.asarray(int(state.count) + 1, np.int64), hp, inner_state
            )

        return GradientTransformation(init, update)

    return wrapped
