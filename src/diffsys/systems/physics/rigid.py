"""2-D rigid bodies (discs and boxes) with mass and inertia, in contact with the colliders.

A body has a centre ``c (2,)``, an angle ``theta``, a velocity ``v (2,)`` and an angular
velocity ``omega``. Its contact points are, for a disc of radius ``r``, the point of its
circle nearest each collider (handled as a particle of radius ``r``), and for a box of half
extents ``(a, b)``, its four corners ``c + R(theta) (+-a, +-b)``. At each contact point ``p``
the laws of :mod:`.contact` give a normal force (penalty with contact damping) and Coulomb
friction from the point's velocity ``v + omega x (p - c)``; the force ``F`` acts on the
centre and adds a torque ``(p - c) x F``. Semi-implicit Euler advances the bodies:
``v' = v + dt F / m``, ``omega' = omega + dt tau / I``, then ``c' = c + dt v'``,
``theta' = theta + dt omega'``.

Inertia: a disc ``m r^2 / 2``, a box ``m (a^2 + b^2) / 3`` (half extents ``a``, ``b``).
Contacts between bodies are not modelled yet.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ... import numpy as dnp
from ...core.tracer import concrete
from ...nn.module import Module, static
from ...relax import soft_step
from ...scan import scan
from .contact import contact_penalty, friction_direction
from .world import _floats

Array = Any

__all__ = ["RigidState", "RigidWorld", "rigid_step", "simulate_rigid"]

_CORNERS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


class RigidState(NamedTuple):
    """Centres ``(B, 2)``, angles ``(B,)``, velocities ``(B, 2)``, angular velocities ``(B,)``."""

    position: Array
    angle: Array
    velocity: Array
    angular_velocity: Array


class RigidWorld(Module):
    """Discs and boxes under gravity and drag, in contact with half-plane colliders.

    ``shapes``: one per body, ``("disc", r)`` or ``("box", a, b)`` (half extents);
    ``mass (B,)``; the other settings as in :class:`~.world.World` (colliders ``planes``,
    default the ground ``y >= 0``). ``inertia`` defaults to the solid shape's.

    >>> import numpy as np
    >>> from diffsys.systems.physics import RigidWorld
    >>> w = RigidWorld([("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 3.0])
    >>> w.inertia.round(4).tolist()
    [0.005, 0.05]
    """

    mass: Array
    inertia: Array
    radius: Array
    half_extent: Array
    gravity: Array
    drag: Array
    angular_drag: Array
    contact_stiffness: Array
    contact_damping: Array
    friction: Array
    contact_smoothing: Array
    friction_smoothing: Array
    is_box: np.ndarray = static()
    plane_normal: np.ndarray = static()
    plane_offset: np.ndarray = static()
    dt: float = static()
    contact: str = static()

    def __init__(
        self,
        shapes,
        mass,
        *,
        inertia=None,
        gravity=(0.0, -9.81),
        drag=0.0,
        angular_drag=0.0,
        planes=None,
        contact_stiffness=1e4,
        contact_damping=0.0,
        friction=0.0,
        contact_smoothing=1e-3,
        friction_smoothing=1e-2,
        dt: float = 1e-3,
        contact: str = "relaxed",
    ) -> None:
        who = "RigidWorld"
        n = len(shapes)
        radius, half, box = np.zeros(n), np.zeros((n, 2)), np.zeros(n, dtype=bool)
        for i, s in enumerate(shapes):
            if s[0] == "disc" and len(s) == 2 and s[1] > 0:
                radius[i] = s[1]
            elif s[0] == "box" and len(s) == 3 and s[1] > 0 and s[2] > 0:
                half[i], box[i] = (s[1], s[2]), True
            else:
                raise ValueError(
                    f"{who}: body {i} has shape {s!r}; use ('disc', r) or ('box', a, b), sizes > 0"
                )
        mass = _floats("mass", mass, (n,), who)
        if np.any(np.asarray(concrete(mass)) <= 0):
            i = int(np.argmax(np.asarray(concrete(mass)) <= 0))
            raise ValueError(f"{who}: body {i} has mass {float(concrete(mass)[i])}; must be > 0")
        if inertia is None:
            m = np.asarray(concrete(mass))
            inertia = np.where(box, m * np.sum(half**2, axis=1) / 3.0, m * radius**2 / 2.0)
        self.mass = mass
        self.inertia = _floats("inertia", inertia, (n,), who)
        self.radius, self.half_extent, self.is_box = radius, half, box
        self.gravity = _floats("gravity", gravity, (2,), who)
        self.drag = _floats("drag", drag, (), who)
        self.angular_drag = _floats("angular_drag", angular_drag, (), who)
        self.contact_stiffness = _floats("contact_stiffness", contact_stiffness, (), who)
        self.contact_damping = _floats("contact_damping", contact_damping, (), who)
        self.friction = _floats("friction", friction, (), who)
        self.contact_smoothing = _floats("contact_smoothing", contact_smoothing, (), who)
        self.friction_smoothing = _floats("friction_smoothing", friction_smoothing, (), who)
        if planes is None:
            planes = [((0.0, 1.0), 0.0)]
        normals = np.array([np.asarray(nv, dtype=np.float64) for nv, _ in planes]).reshape(-1, 2)
        lengths = np.linalg.norm(normals, axis=-1)
        self.plane_normal = normals / lengths[:, None]
        self.plane_offset = np.array([float(b) for _, b in planes]) / lengths
        if contact not in ("relaxed", "hard"):
            raise ValueError(f"{who}: contact must be 'relaxed' or 'hard', got {contact!r}")
        self.dt, self.contact = float(dt), contact

    def hard(self) -> RigidWorld:
        """This world with the hard contact laws."""
        return self.replace(contact="hard")


def _cross(r, f):
    return r[..., 0] * f[..., 1] - r[..., 1] * f[..., 0]


def _contact_points(world: RigidWorld, c, theta):
    """Offsets ``(B, 4, 2)`` of the contact points from the centres: a box's four corners; a
    disc's centre (its radius is added to the depth, and only the first copy counts)."""
    cos, sin = dnp.cos(theta), dnp.sin(theta)
    local = _CORNERS[None] * world.half_extent[:, None, :]  # (B, 4, 2)
    rotated = dnp.stack(
        [
            cos[:, None] * local[..., 0] - sin[:, None] * local[..., 1],
            sin[:, None] * local[..., 0] + cos[:, None] * local[..., 1],
        ],
        axis=-1,
    )
    return dnp.where(world.is_box[:, None, None], rotated, 0.0)


def _wrench(world: RigidWorld, state: RigidState):
    """Forces ``(B, 2)`` and torques ``(B,)`` from gravity, drag and contacts."""
    c, theta, v, omega = state
    force = world.mass[:, None] * world.gravity - world.drag * v
    torque = -world.angular_drag * omega
    if not len(world.plane_offset):
        return force, torque
    if world.contact == "hard":
        penalty, direction, gate = contact_penalty.hard, friction_direction.hard, soft_step.hard
    else:
        penalty, direction, gate = contact_penalty, friction_direction, soft_step
    N = world.plane_normal  # (P, 2)
    # arms from the centre to the contact points, per plane: a box's corners; a disc's rim
    # point facing the plane, -r n (only the first of its four copies counts)
    arm = _contact_points(world, c, theta)[:, :, None, :] - world.radius[:, None, None, None] * N
    active = np.where(world.is_box[:, None], 1.0, np.array([1.0, 0.0, 0.0, 0.0])[None])
    active = active[:, :, None]  # (B, 4, 1)
    p = c[:, None, None, :] + arm  # (B, 4, P, 2)
    pv = v[:, None, None, :] + omega[:, None, None, None] * dnp.stack(
        [-arm[..., 1], arm[..., 0]], axis=-1
    )
    w = world.contact_smoothing
    depth = world.plane_offset - dnp.sum(p * N, axis=-1)  # (B, 4, P)
    vn = dnp.sum(pv * N, axis=-1)
    push = penalty(depth, world.contact_stiffness, smoothing=w) * active
    fn = push - world.contact_damping * vn * gate(depth, temperature=w) * active
    vt = pv - vn[..., None] * N
    slide = direction(vt, smoothing=world.friction_smoothing)
    f_point = fn[..., None] * N - world.friction * push[..., None] * slide  # (B, 4, P, 2)
    force = force + dnp.sum(f_point, axis=(1, 2))
    torque = torque + dnp.sum(_cross(arm, f_point), axis=(1, 2))
    return force, torque


def rigid_step(world: RigidWorld, state: RigidState, controls: dict | None = None) -> RigidState:
    """One semi-implicit Euler step; ``controls`` may hold ``"force" (B, 2)`` and
    ``"torque" (B,)``."""
    force, torque = _wrench(world, state)
    if controls:
        if controls.get("force") is not None:
            force = force + controls["force"]
        if controls.get("torque") is not None:
            torque = torque + controls["torque"]
    dt = world.dt
    v = state.velocity + dt * force / world.mass[:, None]
    omega = state.angular_velocity + dt * torque / world.inertia
    return RigidState(state.position + dt * v, state.angle + dt * omega, v, omega)


def simulate_rigid(
    world: RigidWorld,
    state: RigidState,
    controls: Any = None,
    steps: int | None = None,
    *,
    checkpoint: Any = None,
    replay: bool | str = "auto",
    record: bool = True,
):
    """Run ``steps`` steps of a :class:`RigidWorld` under ``ds.scan``; returns
    ``(final_state, trajectory)`` (the stacked states, or ``None`` with ``record=False``).

    >>> import numpy as np
    >>> from diffsys.systems.physics import RigidState, RigidWorld, simulate_rigid
    >>> w = RigidWorld([("box", 0.2, 0.1)], mass=[1.0], contact_stiffness=1e4,
    ...                contact_damping=20.0, dt=1e-3)
    >>> s0 = RigidState(np.array([[0.0, 0.3]]), np.array([0.3]), np.zeros((1, 2)), np.zeros(1))
    >>> end, _ = simulate_rigid(w, s0, steps=3000)
    >>> round(float(end.position[0, 1]), 2), round(abs(float(np.sin(end.angle[0]))), 2)  # flat
    (0.1, 0.0)
    """
    state = RigidState(*state)
    for name, a, shape in zip(
        RigidState._fields, state, [(-1, 2), (-1,), (-1, 2), (-1,)], strict=True
    ):
        a = np.asarray(concrete(a))
        n = len(np.asarray(concrete(world.mass)))
        want = (n, *shape[1:])
        if a.shape != want:
            raise ValueError(f"simulate_rigid: state.{name} must have shape {want}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            i = int(np.argwhere(~np.isfinite(a))[0][0])
            raise ValueError(f"simulate_rigid: body {i} has a non-finite {name}")
    if steps is None and controls is None:
        raise ValueError("simulate_rigid: give steps= or per-step controls")

    def body(s, u):
        s = rigid_step(world, s, u)
        return s, (s if record else None)

    return scan(body, state, controls, length=steps, checkpoint=checkpoint, replay=replay)
