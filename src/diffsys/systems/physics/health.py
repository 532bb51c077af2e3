"""Gradient health of a rollout: the adjoint of every step, its growth, explosions, and the
jumps that contacts cause.

The adjoint of step ``t`` is ``dL / d state_t``, the gradient of the loss with respect to the
state entering step ``t``. One backward pass gives all of them: :func:`gradient_report` adds
a zero *probe* to the state before each step (``simulate(..., probe=...)``) and takes the
gradient with respect to the probes. Reverse mode carries the adjoint from the last step to
the first; where it grows by a large factor the gradient explodes (a stiff spring, a chaotic
motion, a too-long horizon), and where it jumps at a step where a contact starts or ends the
contact law is the cause (a harder contact law makes the jump larger).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.transforms import value_and_grad
from .rigid import RigidState, RigidWorld, body_contacts, plane_depths, simulate_rigid
from .simulate import simulate
from .world import State, World

__all__ = ["GradientReport", "gradient_report"]


@dataclass(frozen=True)
class GradientReport:
    """Per-step gradient health of a rollout (see :func:`gradient_report`).

    ``norms[t]``: the norm of the adjoint of step ``t`` (``dL / d state_t``);
    ``growth[t] = norms[t] / norms[t + 1]``: how much going back through step ``t`` multiplied
    it; ``exploded_at``: the first step (in the backward pass, from the end) where the norm
    exceeds ``limit`` times the last step's, or ``None``; ``nonfinite_at``: the first step (from
    the end) with a NaN or infinite adjoint, or ``None``; ``contact_events``: ``(step,
    description)`` for every step where a contact starts or ends (hard contact test on the
    trajectory); ``discontinuities``: ``(step, description, ratio)`` for the contact events
    where the change of the adjoint from one step to the next jumps by more than ``jump``
    (contact-induced discontinuities of the gradient; smooth contact laws remove them).
    """

    loss: float
    norms: np.ndarray
    growth: np.ndarray
    limit: float
    exploded_at: int | None
    nonfinite_at: int | None
    contact_events: list[tuple[int, str]] = field(default_factory=list)
    discontinuities: list[tuple[int, str, float]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No explosion and no non-finite adjoint."""
        return self.exploded_at is None and self.nonfinite_at is None

    def summary(self) -> str:
        """A few lines for a log."""
        lines = [
            f"gradient health over {len(self.norms)} steps: loss {self.loss:.6g}, adjoint norm "
            f"{self.norms[-1]:.3g} at the last step, {self.norms[0]:.3g} at the first "
            f"(largest one-step growth {np.max(self.growth, initial=1.0):.3g})"
        ]
        if self.nonfinite_at is not None:
            lines.append(f"  non-finite adjoint from step {self.nonfinite_at} backwards")
        if self.exploded_at is not None:
            lines.append(
                f"  explosion: the adjoint exceeds {self.limit:g} x its final norm at step "
                f"{self.exploded_at}"
            )
        for t, what, g in self.discontinuities:
            lines.append(f"  contact-induced jump at step {t} ({what}): x{g:.3g}")
        if self.healthy and not self.discontinuities:
            lines.append("  healthy")
        return "\n".join(lines)


def gradient_report(
    loss: Callable[[Any, Any], Any],
    world: World | RigidWorld,
    state: State | RigidState,
    controls: Any = None,
    steps: int | None = None,
    *,
    limit: float = 1e6,
    jump: float = 10.0,
    **simulate_kwargs,
) -> GradientReport:
    """The adjoint of every step of ``loss(*simulate(world, state, controls, steps))``, and
    what it says about the gradient's health (a :class:`GradientReport`).

    ``loss(final_state, positions)`` gets the final state and the positions ``(steps, n,
    dim)``. ``limit``: the growth over the whole backward pass that counts as an explosion;
    ``jump``: how abruptly the per-step change of the adjoint must change at a contact event
    to count as a discontinuity (the ratio of the relative changes across two consecutive
    steps; 1 where the motion is smooth, hundreds where a hard contact starts). Other
    keyword arguments go to :func:`~.simulate.simulate`. With a :class:`~.rigid.RigidWorld`
    and a :class:`~.rigid.RigidState` the rollout is :func:`~.rigid.simulate_rigid`, the adjoint
    covers positions, angles and both velocities, and the contact events are those of the
    bodies' contact points (with the colliders and between bodies).

    >>> import numpy as np
    >>> from diffsys.systems.physics import World, State, gradient_report
    >>> w = World(mass=[1.0], gravity=[0.0, -9.81], dt=1e-3, contact_stiffness=1e4)
    >>> s0 = State(np.array([[0.0, 0.05]]), np.zeros((1, 2)))
    >>> r = gradient_report(lambda s, xs: xs[-1, 0, 1], w, s0, steps=200)
    >>> r.contact_events[0]
    (101, 'particle 0 touches collider 0')
    """
    if steps is None:
        raise ValueError("gradient_report: give steps=")
    if isinstance(world, RigidWorld):
        value, adjoint, trajectory = _rigid_adjoint(
            loss, world, RigidState(*state), controls, steps, simulate_kwargs
        )
        events = _rigid_contact_events(world, RigidState(*state), trajectory)
    else:
        state = State(*state)
        value, adjoint, positions = _particle_adjoint(
            loss, world, state, controls, steps, simulate_kwargs
        )
        positions = np.concatenate([np.asarray(state.position)[None], np.asarray(positions)])
        events = _contact_events(world, positions)
    return _report(value, adjoint, events, limit, jump)


def _particle_adjoint(loss, world, state, controls, steps, simulate_kwargs):
    n, dim = np.shape(state.position)
    dtype = np.result_type(state.position, np.float64)
    probe = np.zeros((steps, 2, n, dim), dtype=dtype)
    simulate_kwargs.setdefault("record", "position")
    if simulate_kwargs["record"] != "position":
        raise ValueError("gradient_report: the loss takes positions; leave record='position'")

    def objective(p):
        end, positions = simulate(world, state, controls, steps, probe=p, **simulate_kwargs)
        return loss(end, positions), positions

    (value, positions), adjoint = value_and_grad(objective, has_aux=True)(probe)
    return value, np.asarray(adjoint).reshape(steps, -1), positions


def _rigid_adjoint(loss, world, state, controls, steps, simulate_kwargs):
    if not simulate_kwargs.get("record", True):
        raise ValueError("gradient_report: the loss takes positions; leave record=True")
    simulate_kwargs["record"] = True
    probe = RigidState(*(np.zeros((steps, *np.shape(a))) for a in state))

    def objective(p):
        end, states = simulate_rigid(world, state, controls, steps, probe=p, **simulate_kwargs)
        return loss(end, states.position), states

    (value, states), adjoint = value_and_grad(objective, has_aux=True)(probe)
    flat = np.concatenate([np.asarray(a).reshape(steps, -1) for a in adjoint], axis=1)
    return value, flat, RigidState(*(np.asarray(a) for a in states))


def _report(value, adjoint, events, limit, jump) -> GradientReport:
    finite = np.all(np.isfinite(adjoint), axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(adjoint), adjoint, 0.0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(norms[1:] > 0, norms[:-1] / norms[1:], 1.0)
    nonfinite_at = int(np.flatnonzero(~finite)[-1]) if not finite.all() else None
    end_norm = norms[-1]
    over = np.flatnonzero(norms > limit * end_norm) if end_norm > 0 else np.array([], int)
    exploded_at = int(over[-1]) if over.size else None
    # how much going back through step t turns the adjoint, and how abruptly that changes
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.linalg.norm(adjoint[:-1] - adjoint[1:], axis=1) / norms[1:]
        ratio = np.maximum(change[:-1] / change[1:], change[1:] / change[:-1])
    ratio = np.where(np.isfinite(ratio), ratio, 1.0)
    discontinuities = []
    for t, what in events:
        near = ratio[max(t - 2, 0) : t + 2]
        if near.size and near.max() > jump:
            discontinuities.append((t, what, float(near.max())))
    return GradientReport(
        float(value),
        norms,
        growth,
        float(limit),
        exploded_at,
        nonfinite_at,
        events,
        discontinuities,
    )


def _contact_events(world: World, positions: np.ndarray) -> list[tuple[int, str]]:
    """Steps where a contact (hard test: penetration > 0) starts or ends. ``positions``
    holds the initial positions then those after every step; an event at step ``t`` means
    the positions after step ``t - 1`` differ in contact from those before."""
    r = np.asarray(world.radius)
    events = []
    if len(world.plane_offset):
        depth = r[None, :, None] + world.plane_offset - positions @ world.plane_normal.T
        touching = depth > 0
        for t, i, p in np.argwhere(touching[1:] != touching[:-1]):
            verb = "touches" if touching[t + 1, i, p] else "leaves"
            events.append((int(t) + 1, f"particle {i} {verb} collider {p}"))
    if len(world.pairs):
        i, j = world.pairs[:, 0], world.pairs[:, 1]
        dist = np.linalg.norm(positions[:, j] - positions[:, i], axis=-1)
        touching = dist < r[i] + r[j]
        for t, q in np.argwhere(touching[1:] != touching[:-1]):
            verb = "touch" if touching[t + 1, q] else "separate"
            events.append((int(t) + 1, f"particles {i[q]} and {j[q]} {verb}"))
    return sorted(events)


def _rigid_contact_events(world: RigidWorld, state: RigidState, states: RigidState):
    """Steps where a contact of a rigid body (a box corner or a disc's rim with a collider,
    or two bodies) starts or ends (hard test: depth > 0)."""
    trajectory = RigidState(
        *(np.concatenate([np.asarray(a)[None], b]) for a, b in zip(state, states, strict=True))
    )
    events = []
    if len(world.plane_offset):
        touching = np.stack([plane_depths(world, _at(trajectory, t)) > 0 for t in range(
            len(trajectory.angle))])  # (T + 1, B, 4, P)
        for t, i, k, p in np.argwhere(touching[1:] != touching[:-1]):
            verb = "touches" if touching[t + 1, i, k, p] else "leaves"
            what = f"corner {k}" if world.is_box[i] else "rim"
            events.append((int(t) + 1, f"body {i} ({what}) {verb} collider {p}"))
    if len(world.contact_points):
        depth = np.stack(
            [np.asarray(body_contacts(world, _at(trajectory, t))[2]) for t in range(
                len(trajectory.angle))]
        )
        touching = depth > 0
        rows = world.contact_points
        for t, q in np.argwhere(touching[1:] != touching[:-1]):
            a, b = int(rows[q, 0]), int(rows[q, 2])
            verb = "touch" if touching[t + 1, q] else "separate"
            events.append((int(t) + 1, f"bodies {a} and {b} {verb}"))
    return sorted(set(events))


def _at(states: RigidState, t: int) -> RigidState:
    return RigidState(*(a[t] for a in states))
