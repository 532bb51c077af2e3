"""``simulate``: a rollout under ``ds.scan`` (checkpoint policies, graph replay), and the
gap between the smooth and the hard contact laws on a whole trajectory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ... import numpy as dnp
from ...core.tracer import concrete
from ...scan import scan
from .dynamics import step as _step
from .world import State, World, check_state

Array = Any

__all__ = ["RECORD", "mismatch", "simulate"]

#: What ``simulate`` returns per step (``record=``).
RECORD = ("position", "state", None)


def _leading(tree) -> int | None:
    from ...core.pytree import tree_leaves

    sizes = {np.shape(a)[0] for a in tree_leaves(tree) if np.ndim(a)}
    return sizes.pop() if len(sizes) == 1 else None


def simulate(
    world: World,
    state: State,
    controls: Any = None,
    steps: int | None = None,
    *,
    controller: Callable | None = None,
    checkpoint: Any = None,
    replay: bool | str = "auto",
    record: str | None = "position",
    probe: Array | None = None,
    check: bool = True,
):
    """Run ``steps`` time steps of ``world`` from ``state``; returns ``(final_state,
    trajectory)``.

    ``controls`` is a pytree of per-step inputs with a leading axis of length ``steps`` (e.g.
    ``{"force": (steps, n, dim), "actuation": (steps, m)}``), or ``None``. ``controller(state,
    x) -> dict`` turns each step's input ``x`` (a slice of ``controls``) and the current state
    into the controls of :func:`~.dynamics.forces` (a closed-loop controller; its parameters,
    read from its closure, are differentiated). ``trajectory`` stacks, per step, the positions
    (``record="position"``, ``(steps, n, dim)``), the states (``"state"``) or nothing
    (``None``: the least memory for long rollouts).

    The loop is ``ds.scan(..., checkpoint=checkpoint, replay=replay)``: every policy of
    :mod:`diffsys.scan.policies` gives the same gradients (``"sqrt"``, ``("binomial", s)`` keep
    memory bounded for long rollouts); ``replay="auto"`` (default) traces the step once and
    replays it, falling back silently where it cannot. ``probe (steps, 2, n, dim)`` (zeros) is
    added to the state before each step: its gradient is the adjoint of every step (see
    :func:`~.health.gradient_report`). ``check=False`` skips :func:`~.world.check_state`.

    >>> import numpy as np, diffsys as ds
    >>> from diffsys.systems.physics import World, State, simulate
    >>> w = World(mass=[1.0], gravity=[0.0, -10.0], planes=[], dt=0.01)
    >>> s0 = State(np.zeros((1, 2)), np.array([[1.0, 0.0]]))
    >>> s1, xs = simulate(w, s0, steps=100)
    >>> s1.position.round(3), xs.shape
    (array([[ 1.  , -5.05]]), (100, 1, 2))
    >>> g = ds.grad(lambda v0: simulate(w, State(s0.position, v0), steps=100)[0].position[0, 0])
    >>> g(s0.velocity)
    array([[1., 0.]])
    """
    if record not in RECORD:
        raise ValueError(f"simulate: record must be one of {RECORD}, got {record!r}")
    if not isinstance(world, World):
        raise TypeError(f"simulate: world must be a World, got {type(world).__name__}")
    state = State(*state)
    if check:
        check_state(world, State(concrete(state[0]), concrete(state[1])))
    if steps is None:
        steps = _leading(controls)
        if steps is None:
            raise ValueError("simulate: give steps=, or controls with one leading (steps) axis")
    xs = (controls, probe)

    def body(s, inputs):
        u, p = (None, None) if inputs is None else inputs
        if p is not None:
            s = State(s.position + p[0], s.velocity + p[1])
        if controller is not None:
            u = controller(s, u)
        s = _step(world, s, u)
        if record == "position":
            return s, s.position
        return s, (s if record == "state" else None)

    if controls is None and probe is None:
        xs = None
    return scan(body, state, xs, length=steps, checkpoint=checkpoint, replay=replay)


def mismatch(
    world: World, state: State, controls: Any = None, steps: int | None = None, **kwargs
) -> dict[str, float]:
    """The gap between the smooth and the hard contact laws over a rollout: the largest
    distance between the positions of the two trajectories (``"trajectory"``, in length
    units) and between their final states (``"final_position"``, ``"final_velocity"``).

    The smoothing of contact is a relaxation like any other: this is its mismatch report. It
    shrinks with ``contact_smoothing`` and ``friction_smoothing``.
    """
    kwargs.setdefault("record", "position")
    soft_end, soft = simulate(world.relaxed(), state, controls, steps, **kwargs)
    hard_end, hard = simulate(world.hard(), state, controls, steps, **kwargs)

    def gap(a, b):
        return float(np.max(dnp.sqrt(dnp.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=-1))))

    return {
        "trajectory": gap(soft, hard),
        "final_position": gap(soft_end.position, hard_end.position),
        "final_velocity": gap(soft_end.velocity, hard_end.velocity),
    }
