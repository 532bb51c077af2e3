"""The equations of motion: one function per physical effect, and the integrators.

Each force function takes the world, positions ``x (n, dim)`` and velocities ``v (n, dim)``
and returns forces ``(n, dim)``; :func:`forces` adds them up, :func:`step` advances one time
step with the world's integrator. They are plain :mod:`diffsys.numpy` code: on NumPy arrays
they run as NumPy, under a transform they are differentiated.

Scatter-adds (a spring's force onto its two particles) are products with the world's static
incidence matrices, so every step is a handful of dense array operations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import numpy as dnp
from ...relax import soft_step
from .contact import contact_penalty, friction_direction
from .world import State, World

Array = Any

__all__ = [
    "acceleration",
    "contact_forces",
    "energy",
    "external_forces",
    "forces",
    "pair_forces",
    "spring_forces",
    "step",
]


def _norm(d):
    return dnp.sqrt(dnp.sum(d * d, axis=-1))


def external_forces(world: World, x: Array, v: Array) -> Array:
    """Gravity ``m g`` and linear drag ``-drag v``."""
    return world.mass[:, None] * world.gravity - world.drag * v


def spring_forces(world: World, x: Array, v: Array, actuation: Array | None = None) -> Array:
    """Damped springs: ``f = k (L - L0) + c dL/dt`` along each spring, pulling its ends
    together when stretched. ``actuation (m,)`` scales the rest lengths: ``L0 (1 + a)``."""
    if not len(world.springs):
        return 0.0
    B = world.spring_incidence
    d = B.T @ x  # (m, dim): x_j - x_i
    length = _norm(d)
    e = d / length[:, None]
    rate = dnp.sum((B.T @ v) * e, axis=-1)
    rest = world.rest_length if actuation is None else world.rest_length * (1.0 + actuation)
    f = world.stiffness * (length - rest) + world.damping * rate
    return -(B @ (f[:, None] * e))


def _laws(world: World):
    if world.contact == "hard":
        return contact_penalty.hard, friction_direction.hard, soft_step.hard
    return contact_penalty, friction_direction, soft_step


def contact_forces(world: World, x: Array, v: Array) -> Array:
    """Contact with the half-plane colliders: a penalty normal force (with contact damping
    while in contact) and Coulomb friction ``-mu f_n dir(v_t)`` (see :mod:`.contact`)."""
    if not len(world.plane_offset):
        return 0.0
    penalty, direction, gate = _laws(world)
    N = world.plane_normal  # (P, dim)
    w = world.contact_smoothing
    depth = world.radius[:, None] + world.plane_offset - x @ N.T  # (n, P), > 0 inside
    vn = v @ N.T  # (n, P)
    push = penalty(depth, world.contact_stiffness, smoothing=w)
    fn = push - world.contact_damping * vn * gate(depth, temperature=w)
    vt = v[:, None, :] - vn[:, :, None] * N  # (n, P, dim)
    slide = direction(vt, smoothing=world.friction_smoothing)
    ft = -world.friction * dnp.sum(push[:, :, None] * slide, axis=1)
    return fn @ N + ft


def pair_forces(world: World, x: Array, v: Array) -> Array:
    """Contact between particles of positive radius (``collide=True``): the penalty normal
    force with contact damping along the line of centres, and Coulomb friction
    ``-mu f_n dir(v_t)`` on the relative tangential velocity ``v_t`` of the two particles
    (the same laws as :func:`contact_forces`; equal and opposite on the two)."""
    if not len(world.pairs):
        return 0.0
    penalty, direction, gate = _laws(world)
    B = world.pair_incidence
    d = B.T @ x
    dist = _norm(d)
    e = d / dist[:, None]
    i, j = world.pairs[:, 0], world.pairs[:, 1]
    depth = world.radius[i] + world.radius[j] - dist
    rel = B.T @ v  # v_j - v_i
    rate = dnp.sum(rel * e, axis=-1)  # separation speed
    w = world.contact_smoothing
    push = penalty(depth, world.contact_stiffness, smoothing=w)
    fn = push - world.contact_damping * rate * gate(depth, temperature=w)
    f = fn[:, None] * e
    # a constant mu = 0 (not a traced parameter) adds exactly 0: skip its cost
    mu = world.friction
    if not (isinstance(mu, (np.ndarray, np.generic, float)) and not np.any(mu)):
        slide = direction(rel - rate[:, None] * e, smoothing=world.friction_smoothing)
        f = f - world.friction * push[:, None] * slide
    return B @ f


def forces(world: World, x: Array, v: Array, controls: dict | None = None) -> Array:
    """The total force on every particle; ``controls`` may hold ``"force" (n, dim)`` (external
    forces) and ``"actuation" (m,)`` (rest-length changes of the springs)."""
    controls = controls or {}
    f = external_forces(world, x, v)
    f = f + spring_forces(world, x, v, controls.get("actuation"))
    f = f + contact_forces(world, x, v)
    f = f + pair_forces(world, x, v)
    if controls.get("force") is not None:
        f = f + controls["force"]
    return f


def acceleration(world: World, x: Array, v: Array, controls: dict | None = None) -> Array:
    """``forces / mass``."""
    return forces(world, x, v, controls) / world.mass[:, None]


def step(world: World, state: State, controls: dict | None = None) -> State:
    """One time step ``world.dt`` with ``world.integrator``:

    - ``"euler"`` (semi-implicit, symplectic): ``v' = v + dt a(x, v)``, ``x' = x + dt v'``;
    - ``"verlet"`` (velocity Verlet): ``x' = x + dt v + dt^2/2 a``, ``v' = v + dt/2 (a + a')``
      with ``a' = a(x', v + dt a)`` (exact Verlet when forces do not depend on velocity);
    - ``"rk4"``: the classical fourth-order Runge-Kutta method on ``(x, v)``.
    """
    x, v = state
    dt = world.dt
    if world.integrator == "euler":
        v = v + dt * acceleration(world, x, v, controls)
        return State(x + dt * v, v)
    if world.integrator == "verlet":
        a0 = acceleration(world, x, v, controls)
        x1 = x + dt * v + (0.5 * dt * dt) * a0
        a1 = acceleration(world, x1, v + dt * a0, controls)
        return State(x1, v + (0.5 * dt) * (a0 + a1))
    h = 0.5 * dt
    a1 = acceleration(world, x, v, controls)
    x2, v2 = x + h * v, v + h * a1
    a2 = acceleration(world, x2, v2, controls)
    x3, v3 = x + h * v2, v + h * a2
    a3 = acceleration(world, x3, v3, controls)
    x4, v4 = x + dt * v3, v + dt * a3
    a4 = acceleration(world, x4, v4, controls)
    return State(
        x + (dt / 6.0) * (v + 2.0 * v2 + 2.0 * v3 + v4),
        v + (dt / 6.0) * (a1 + 2.0 * a2 + 2.0 * a3 + a4),
    )


def energy(world: World, state: State) -> Array:
    """Kinetic energy, spring potential and gravitational potential (contacts, drag and
    actuation excluded): conserved by the exact motion of a world without them."""
    x, v = state
    kinetic = 0.5 * dnp.sum(world.mass * dnp.sum(v * v, axis=-1))
    potential = -dnp.sum(world.mass * (x @ world.gravity))
    if len(world.springs):
        stretch = _norm(world.spring_incidence.T @ x) - world.rest_length
        potential = potential + 0.5 * dnp.sum(world.stiffness * stretch * stretch)
    return kinetic + potential
