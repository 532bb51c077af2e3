"""``Stage``: a named unit of a pipeline with an explicit contract.

A stage wraps an ``nn.Module`` (which owns its parameters), or a plain function (with no
parameters, or with a pytree of parameters passed as its first argument). Its contract:

- ``inputs``: names of upstream stage outputs or batch keys (default: the previous stage);
- ``input_spec`` / ``output_spec``: :class:`~diffsys.pipeline.Spec` shapes with symbolic
  dimensions and dtypes, checked on every call;
- ``kind``: how it differentiates (see :data:`KINDS`);
- its state (BatchNorm running statistics, held by the pipeline) and whether it is
  ``frozen`` (no gradient) or ``checkpoint``-ed (recomputed in the backward pass).

A module with methods ``relaxed(self, x)`` and ``hard(self, x)`` is a relaxed stage: the
surrogate in training, the hard operation at inference. So is a function that is a
:class:`diffsys.relax.Relaxation` (``relax.soft_topk_mask.partial(k=3)``, ...): its ``.hard``
is the inference form.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.custom import checkpoint as _checkpoint
from ..core.custom import custom_jvp, custom_vjp
from ..core.pytree import tree_leaves
from ..core.tracer import Tracer, concrete
from ..nn.module import Module
from .spec import ContractError, Spec, _is_array, as_spec

__all__ = ["KINDS", "Stage"]

#: How a stage differentiates. ``exact``: ordinary derivatives. ``relaxed``: a smooth
#: surrogate in training, the hard operation at inference. ``straight_through``: the hard
#: value with the surrogate's derivative in training, the hard operation at inference.
#: ``score_function``: a REINFORCE estimator (``diffsys.relax.score_function``) inside the
#: stage; stochastic, so finite differences do not apply. ``implicit``: a solver
#: differentiated implicitly (``diffsys.implicit``). ``custom``: a hand-written adjoint
#: (``ds.custom_vjp``/``custom_jvp``, or ``vjp=(fwd, bwd)`` here).
KINDS = ("exact", "relaxed", "straight_through", "score_function", "implicit", "custom")
RELAXED_KINDS = ("relaxed", "straight_through")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _is_relaxed_module(m) -> bool:
    return (
        isinstance(m, Module)
        and callable(getattr(m, "relaxed", None))
        and callable(getattr(m, "hard", None))
    )


def _relaxation_hard(fn) -> Callable | None:
    """The ``.hard`` form of a :class:`~diffsys.relax.Relaxation` (or of a
    ``functools.partial`` of one), else ``None``."""
    from ..relax.smooth import Relaxation

    if isinstance(fn, Relaxation):
        return fn.hard
    if isinstance(fn, functools.partial) and isinstance(fn.func, Relaxation):
        return functools.partial(fn.func.hard, *fn.args, **fn.keywords)
    return None


def _accepts_key(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "key" in params  # named: **kwargs (NumPy-style functions) do not count


def _has_training_flags(tree) -> bool:
    if not isinstance(tree, Module):
        return False
    return any("training" in m.__dict__ for _, m in tree.modules())


def _fn_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class Stage:
    """A named pipeline unit with an explicit contract.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> from diffsys.pipeline import Stage
    >>> s = Stage("encoder", nn.Linear(4, 2, key=0), input_spec=("B", 4), output_spec=("B", 2))
    >>> s.kind, s.owns_parameters
    ('exact', True)

    ``fn`` is an ``nn.Module`` (called as ``fn(*inputs, key=...)``; stateful ones as
    ``y, state = fn(*inputs, state, key=...)``), or a function: ``fn(*inputs)``, or
    ``fn(params, *inputs)`` when ``params`` (a pytree) is given. For a relaxed or
    straight-through function stage, ``fn`` is the surrogate and ``hard`` the exact operation.
    ``vjp=(fwd, bwd)`` makes a custom-adjoint stage (``ds.custom_vjp`` rules).
    ``checkpoint``: ``True`` recomputes the stage in the backward pass (``ds.checkpoint``);
    a ``ds.checkpoint`` policy (``"dots_saveable"``, ...) keeps what it selects.
    """

    def __init__(
        self,
        name: str,
        fn: Module | Callable,
        *,
        inputs: str | Sequence[str] | None = None,
        input_spec: Any = None,
        output_spec: Any = None,
        kind: str | None = None,
        params: Any = None,
        hard: Callable | None = None,
        vjp: tuple[Callable, Callable] | None = None,
        frozen: bool = False,
        checkpoint: bool | str | Callable = False,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"Stage: name must be an identifier-like string (letters, digits, _ and -; "
                f"no dots: dots separate parameter names), got {name!r}"
            )
        self.name = name
        is_module = isinstance(fn, Module)
        if not is_module and not callable(fn):
            raise TypeError(
                f"stage {name!r}: expected an nn.Module or a function, got {type(fn).__name__}"
            )
        if is_module and params is not None:
            raise TypeError(
                f"stage {name!r}: an nn.Module owns its parameters; params= is for function stages"
            )
        self.vjp_rules = None
        if vjp is not None:
            if is_module:
                raise TypeError(f"stage {name!r}: vjp=(fwd, bwd) is for function stages")
            fwd, bwd = vjp
            self.vjp_rules = (fn, fwd, bwd)
            wrapped = custom_vjp(fn)
            wrapped.defvjp(fwd, bwd)
            fn = wrapped
            if kind not in (None, "custom"):
                raise ValueError(f"stage {name!r}: vjp= makes a 'custom' stage, not {kind!r}")
            kind = "custom"
        self.module: Module | None = fn if is_module else None
        self.fn: Callable | None = None if is_module else fn
        self.params = fn if is_module else params
        #: whether ``hard_fn`` is the ``.hard`` of ``fn``, a relax.Relaxation (not given)
        self.hard_from_fn = False
        if hard is None and params is None and vjp is None and kind in (None, *RELAXED_KINDS):
            hard = _relaxation_hard(fn)
            self.hard_from_fn = hard is not None
        self.hard_fn = hard
        self.kind = self._resolve_kind(kind, fn, is_module)
        if isinstance(inputs, str):
            inputs = (inputs,)
        self.inputs: tuple[str, ...] | None = None if inputs is None else tuple(inputs)
        self._input_spec_arg = input_spec
        self.input_spec: tuple[Spec | None, ...] | None = None
        self.output_spec = _as_output_spec(output_spec, name)
        self.frozen = bool(frozen)
        if isinstance(checkpoint, str) or (callable(checkpoint) and checkpoint is not True):
            _checkpoint(_identity, policy=checkpoint)  # an unknown policy fails here, named
            self.checkpoint = checkpoint
        else:
            self.checkpoint = bool(checkpoint)
        self.stateful = bool(is_module and getattr(fn, "stateful", False))
        if self.kind in RELAXED_KINDS:  # (surrogate, hard): each may take key=
            forms = (fn.relaxed, fn.hard) if is_module else (fn, hard)
            self._forms_take_key = (_accepts_key(forms[0]), _accepts_key(forms[1]))
            self.accepts_key = any(self._forms_take_key)
        else:
            self._forms_take_key = (False, False)
            self.accepts_key = _accepts_key(type(fn).__call__ if is_module else fn)
        self.has_training_flags = _has_training_flags(fn)
        if self.inputs is not None:
            self._bind_inputs(self.inputs)

    # --- construction helpers ------------------------------------------------------------------
    def _resolve_kind(self, kind, fn, is_module) -> str:
        relaxed_module = _is_relaxed_module(fn)
        if kind is None:
            if relaxed_module or self.hard_fn is not None:
                return "relaxed"
            if isinstance(fn, custom_vjp | custom_jvp):
                return "custom"
            return "exact"
        if kind not in KINDS:
            raise ValueError(f"stage {self.name!r}: kind must be one of {KINDS}, got {kind!r}")
        if kind in RELAXED_KINDS and not relaxed_module and self.hard_fn is None:
            raise TypeError(
                f"stage {self.name!r}: a {kind!r} stage needs a hard operation: wrap an "
                "nn.Module with methods relaxed(x) and hard(x), or give hard= with the "
                "surrogate function"
            )
        if self.hard_fn is not None and kind not in RELAXED_KINDS:
            raise TypeError(
                f"stage {self.name!r}: hard= is for 'relaxed' and 'straight_through' stages, "
                f"not {kind!r}"
            )
        return kind

    def _bind_inputs(self, inputs: tuple[str, ...]) -> None:
        """Fix the input names (the pipeline does this for stages without ``inputs``)."""
        self.inputs = inputs
        spec = self._input_spec_arg
        n = len(inputs)
        if spec is None:
            self.input_spec = (None,) * n
        elif isinstance(spec, dict) and not ({"shape", "dtype"} >= set(spec) and n == 1):
            unknown = set(spec) - set(inputs)
            if unknown:
                raise ValueError(
                    f"stage {self.name!r}: input_spec names {sorted(unknown)}, but its inputs "
                    f"are {list(inputs)}"
                )
            self.input_spec = tuple(as_spec(spec.get(i)) for i in inputs)
        elif n == 1:
            if isinstance(spec, list) and len(spec) == 1:
                spec = spec[0]
            self.input_spec = (as_spec(spec),)
        else:
            if not isinstance(spec, list | tuple) or len(spec) != n or _is_shape(spec):
                raise ValueError(
                    f"stage {self.name!r}: it has {n} inputs {list(inputs)}; give input_spec "
                    f"as a list of {n} specs or a dict by input name, got {spec!r}"
                )
            self.input_spec = tuple(as_spec(s) for s in spec)

    # --- introspection -------------------------------------------------------------------------
    @property
    def owns_parameters(self) -> bool:
        return self.params is not None and bool(tree_leaves(self.params))

    @property
    def relaxed(self) -> bool:
        """Whether the stage has a training surrogate and an inference hard operation."""
        return self.kind in RELAXED_KINDS

    @property
    def type_name(self) -> str:
        target = self.module if self.module is not None else self.fn
        return type(target).__name__ if self.module is not None else _fn_name(target)

    def __repr__(self) -> str:
        extra = []
        if self.frozen:
            extra.append("frozen")
        if self.checkpoint:
            extra.append("checkpoint")
        flags = f", {', '.join(extra)}" if extra else ""
        return (
            f"Stage({self.name!r}, {self.type_name}, kind={self.kind!r}, "
            f"inputs={list(self.inputs or ())}{flags})"
        )

    # --- calling -------------------------------------------------------------------------------
    def invoke(self, owner, inputs: list, relax: str, state=None, seed: int | None = None):
        """Run the stage on ``inputs`` with parameters ``owner``; ``relax`` is ``"relaxed"``
        (training form), ``"hard"``, or ``"surrogate"`` (the smooth surrogate itself, even for
        a straight-through stage). Each callable of the stage that takes ``key=`` gets the int
        ``seed`` (diffsys turns int keys into fresh Generators), so a straight-through stage's
        two forms, and a checkpointed stage's recomputation, draw the same numbers. Returns
        ``(output, new_state)``; no contract checks."""
        if self.checkpoint:

            def body(owner, state, *xs):
                return self._call(owner, list(xs), relax, state, seed)

            policy = None if self.checkpoint is True else self.checkpoint
            return _checkpoint(body, policy=policy)(owner, state, *inputs)
        return self._call(owner, inputs, relax, state, seed)

    def _forms(self, owner, seed) -> tuple[Callable, Callable]:
        """``(surrogate, hard)`` of a relaxed or straight-through stage, bound to ``owner``
        (and to a fresh random key each, when they take one)."""
        if self.module is not None:
            surrogate, hard = owner.relaxed, owner.hard
        elif self.params is not None:
            surrogate = functools.partial(self.fn, owner)
            hard = functools.partial(self.hard_fn, owner)
        else:
            surrogate, hard = self.fn, self.hard_fn
        if seed is not None:
            if self._forms_take_key[0]:
                surrogate = functools.partial(surrogate, key=seed)
            if self._forms_take_key[1]:
                hard = functools.partial(hard, key=seed)
        return surrogate, hard

    def _call(self, owner, inputs: list, relax: str, state, seed):
        if self.kind in RELAXED_KINDS:
            surrogate, hard = self._forms(owner, seed)
            if relax == "surrogate":
                return surrogate(*inputs), state
            if relax == "hard":
                return hard(*inputs), state
            if self.kind == "straight_through":
                from ..relax.straight_through import straight_through

                return straight_through(hard, surrogate)(*inputs), state
            return surrogate(*inputs), state
        kw = {"key": seed} if self.accepts_key and seed is not None else {}
        if self.module is not None:
            if self.stateful:
                return owner(*inputs, state, **kw)
            return owner(*inputs, **kw), state
        if self.params is not None:
            return self.fn(owner, *inputs, **kw), state
        return self.fn(*inputs, **kw), state

    def guarded_invoke(self, owner, inputs: list, relax: str, state=None, seed=None):
        """:meth:`invoke` with the inputs read-only during the call: a stage that writes into
        its input raises :class:`ContractError` naming itself and the input."""
        locked = []
        for i, x in enumerate(inputs):
            for leaf in _leaves(x):
                v = concrete(leaf)
                if isinstance(v, np.ndarray) and v.flags.writeable:
                    v.flags.writeable = False
                    locked.append((i, v))
        try:
            out = self.invoke(owner, inputs, relax, state, seed)
        except ValueError as exc:
            if "read-only" in str(exc) and locked:
                names = sorted({self.inputs[i] for i, _ in locked})
                raise ContractError(
                    f"stage {self.name!r} modified its input in place ({exc}); stages must not "
                    f"write into their inputs {names}: copy first (x = x.copy()) or use the "
                    "functional forms (x.at[i].set(v), dnp.where)"
                ) from exc
            raise
        finally:
            for _, v in locked:
                v.flags.writeable = True
        if locked:  # views of the inputs made during the call stayed read-only: free them
            for leaf in _leaves(out[0]):
                v = concrete(leaf)
                if isinstance(v, np.ndarray) and not v.flags.writeable and v.base is not None:
                    try:
                        v.flags.writeable = True
                    except ValueError:
                        pass
        return out

    # --- contracts -----------------------------------------------------------------------------
    def check_inputs(self, values: list, bindings: dict) -> None:
        for i, (spec, v) in enumerate(zip(self.input_spec, values, strict=True)):
            if spec is not None:
                where = f"stage {self.name!r} input {i} ({self.inputs[i]!r})"
                spec.check(v, bindings, where)

    def check_output(self, value, bindings: dict) -> None:
        """Raise :class:`ContractError` unless ``value`` is what the stage may return: an
        array (meeting ``output_spec`` when that is a :class:`Spec`), or a tuple/dict of arrays
        when ``output_spec`` declares one (``(None, None)``: two arrays of any shape)."""
        spec = self.output_spec
        if spec is None:
            if not _is_array(value):
                raise ContractError(self._undeclared_output(value))
            return
        where = f"stage {self.name!r} output"
        if isinstance(spec, Spec):
            spec.check(value, bindings, where)
            return
        if isinstance(spec, dict):
            if not isinstance(value, dict) or set(value) != set(spec):
                got = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
                raise ContractError(f"{where}: expected a dict with keys {sorted(spec)}, got {got}")
            pairs = [(f"{where} [{k!r}]", spec[k], value[k]) for k in spec]
        else:
            if not isinstance(value, list | tuple) or len(value) != len(spec):
                got = (
                    f"a {type(value).__name__} of length {len(value)}"
                    if isinstance(value, list | tuple)
                    else f"a {type(value).__name__}"
                )
                raise ContractError(
                    f"{where}: expected a sequence of {len(spec)} outputs {list(spec)}, got {got}"
                )
            pairs = [
                (f"{where} [{k}]", s, v) for k, (s, v) in enumerate(zip(spec, value, strict=True))
            ]
        for w, s, v in pairs:
            if s is not None:
                s.check(v, bindings, w)
            elif not _is_array(v):
                raise ContractError(
                    f"{w}: expected an array, got a {type(v).__name__}; each entry of a "
                    "declared tuple/dict output is an array"
                )

    def _undeclared_output(self, value) -> str:
        """The error for a non-array output with no declared structure: what came back, and
        the fixes."""
        got = f"a {type(value).__name__}"
        if value is None:
            got, hint = "None", "Does its function return its result?"
        elif isinstance(value, list | tuple | dict):
            got += f" of length {len(value)}"
            if isinstance(value, dict):
                declare = "{" + ", ".join(f"{k!r}: None" for k in value) + "}"
                read = f"{self.name}.{next(iter(value), 'key')}"
            else:
                declare = repr((None,) * len(value))
                read = f"{self.name}.0"
            hint = (
                f"To return several arrays, declare them: output_spec={declare} (None: any "
                f"shape; later stages read one as {read!r}). For one array, combine them "
                "with dnp.stack or dnp.concatenate."
            )
        else:
            hint = "Return an array: np.asarray(value), or a diffsys.numpy result."
        return (
            f"stage {self.name!r} ({self.type_name}) returned {got}, not an array; a stage "
            f"output is an array, or a tuple/dict of arrays declared by output_spec. {hint}"
        )


def _identity(x):
    return x


def _leaves(x):
    """The leaves of ``x``, without a pytree walk for the common single array."""
    if isinstance(x, np.ndarray | Tracer):
        return (x,)
    return tree_leaves(x)


def _is_shape(spec) -> bool:
    """Whether ``spec`` reads as one shape (``("B", 3)``), not a list of per-input specs."""
    entries = all(d is None or d is Ellipsis or isinstance(d, int | str) for d in spec)
    return entries and any(d is not None for d in spec)


def _as_output_spec(spec, name: str):
    if spec is None or isinstance(spec, Spec):
        return spec
    if isinstance(spec, tuple | list) and _is_shape(spec):
        return as_spec(spec)
    if isinstance(spec, dict) and set(spec) <= {"shape", "dtype"}:
        return as_spec(spec)
    if isinstance(spec, tuple | list):
        return type(spec)(as_spec(s) for s in spec)
    if isinstance(spec, dict):
        return {k: as_spec(s) for k, s in spec.items()}
    raise TypeError(f"stage {name!r}: output_spec must be a Spec, a shape or a tuple/dict of them")
