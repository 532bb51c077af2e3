"""2-D rigid bodies (discs and boxes) with mass and inertia, in contact with the colliders.

A body has a centre ``c (2,)``, an angle ``theta``, a velocity ``v (2,)`` and an angular
velocity ``omega``. Its contact points are, for a disc of radius ``r``, the point of its
circle nearest each collider (handled as a particle of radius ``r``), and for a box of half
extents ``(a, b)``, its four corners ``c + R(theta) (+-a, +-b)``. At each contact point ``p``
the laws of :mod:`.contact` give a normal force (penalty with contact damping) and Coulomb
friction from the point's velocity ``v + omega x (p - c)``; the force ``F`` acts on the
centre and adds a torque ``(p - c) x F``. The world's ``integrator`` advances the bodies, as
for particles: ``"euler"`` (semi-implicit: ``v' = v + dt F / m``, ``omega' = omega + dt tau /
I``, then ``c' = c + dt v'``, ``theta' = theta + dt omega'``), ``"verlet"`` (velocity Verlet)
or ``"rk4"``, each on the generalised coordinates ``(c, theta)`` and velocities
``(v, omega)``.

Inertia: a disc ``m r^2 / 2``, a box ``m (a^2 + b^2) / 3`` (half extents ``a``, ``b``).

Contacts between bodies (``collide=``) use the same laws. Each is a point of body ``a``
(with a radius ``r_a``) against body ``b``, with a depth and a unit normal ``n`` from ``b`` to
``a``:

- disc-disc: the centre of ``a`` against the disc ``b``: depth ``r_a + r_b - |c_a - c_b|``;
- disc-box: the centre of the disc against the box, by the box's signed distance function
  (``q`` the point in the box's frame, ``d = q - clip(q, -h, h)``: ``|d|`` outside,
  ``max(|q| - h)`` inside, the normal its gradient): depth ``r_a - sdf``;
- box-box: each corner of either box (radius 0) against the other box, the same way. Two
  boxes whose edges cross with no corner inside the other (a thin bar across another like a
  plus sign) have no contact point and pass through each other: ``simulate_rigid`` warns
  once, naming the bodies and the step (:func:`edge_crossings`).

The force ``F`` (penalty with contact damping along ``n``, Coulomb friction from the relative
velocity of the two bodies at the contact point ``p_a - r_a n``) acts on ``a`` and ``-F`` on
``b``, each with its torque.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ... import numpy as dnp
from ...core.pytree import tree_map
from ...core.tracer import Tracer, concrete
from ...nn.module import Module, static
from ...relax import soft_step
from ...scan import scan
from .contact import contact_penalty, friction_direction
from .world import INTEGRATORS, _floats, _given_pairs, warn_if_unstable

Array = Any

__all__ = [
    "RigidState",
    "RigidWorld",
    "body_contacts",
    "edge_crossings",
    "plane_depths",
    "rigid_stability_limit",
    "rigid_step",
    "simulate_rigid",
]

_CORNERS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


class RigidState(NamedTuple):
    """Centres ``(B, 2)``, angles ``(B,)``, velocities ``(B, 2)``, angular velocities ``(B,)``."""

    position: Array
    angle: Array
    velocity: Array
    angular_velocity: Array


def _body_pairs(collide, n: int) -> np.ndarray:
    if collide is True:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    elif collide is False or collide is None:
        pairs = []
    else:
        pairs = _given_pairs(collide, n, "RigidWorld", "bodies")
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _point_contacts(pairs: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Rows ``(a, corner, b)``: a point of body ``a`` (its centre if ``corner`` is -1, else
    that corner of the box ``a``) against body ``b`` (a disc if ``a`` is a disc's centre and
    ``b`` a disc; else ``b`` is a box)."""
    rows = []
    for i, j in pairs.tolist():
        if not box[i] and not box[j]:
            rows.append((j, -1, i))
        elif box[i] and box[j]:
            rows += [(i, k, j) for k in range(4)] + [(j, k, i) for k in range(4)]
        else:
            disc, b = (i, j) if box[j] else (j, i)
            rows.append((disc, -1, b))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class RigidWorld(Module):
    """Discs and boxes under gravity and drag, in contact with half-plane colliders.

    ``shapes``: one per body, ``("disc", r)`` or ``("box", a, b)`` (half extents);
    ``mass (B,)``; the other settings as in :class:`~.world.World` (colliders ``planes``,
    default the ground ``y >= 0``; ``integrator`` ``"euler"``, ``"verlet"`` or ``"rk4"``).
    ``inertia`` defaults to the solid shape's. ``collide=True``
    adds contacts between every two bodies, ``collide=[(i, j), ...]`` between those pairs
    (disc-disc, disc-box and box-box; see the module docstring).

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
    pairs: np.ndarray = static()
    contact_points: np.ndarray = static()
    body_incidence: np.ndarray = static()
    plane_normal: np.ndarray = static()
    plane_offset: np.ndarray = static()
    dt: float = static()
    contact: str = static()
    integrator: str = static()

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
        collide: bool | Sequence[tuple[int, int]] = False,
        dt: float = 1e-3,
        contact: str = "relaxed",
        integrator: str = "euler",
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
        if integrator not in INTEGRATORS:
            raise ValueError(
                f"{who}: integrator must be one of {sorted(INTEGRATORS)}, got {integrator!r}"
            )
        self.dt, self.contact, self.integrator = float(dt), contact, integrator
        self.pairs = _body_pairs(collide, n)
        self.contact_points = _point_contacts(self.pairs, box)
        rows = self.contact_points
        self.body_incidence = np.zeros((n, len(rows)))
        self.body_incidence[rows[:, 0], np.arange(len(rows))] = 1.0
        self.body_incidence[rows[:, 2], np.arange(len(rows))] = -1.0
        learned = (self.mass, self.inertia, self.contact_stiffness)
        if not any(isinstance(v, Tracer) for v in learned):
            limit, where = rigid_stability_limit(self)
            warn_if_unstable(who, self.dt, integrator, limit, where,
                             "a softer contact_stiffness or a heavier body", stacklevel=3)

    def hard(self) -> RigidWorld:
        """This world with the hard contact laws."""
        return self.replace(contact="hard")


def rigid_stability_limit(world: RigidWorld) -> tuple[float, str]:
    """An estimate of the largest stable time step of a :class:`RigidWorld`, and what limits
    it (also :func:`~.world.stability_limit`).

    A contact point ``p`` pressing along ``n`` with stiffness ``k`` moves body ``i`` at the
    frequency ``omega^2 = k (1/m_i + ((p - c_i) x n)^2 / I_i)``. A disc's normal forces pass
    through its centre (no lever); a box's contact corners have a lever up to ``l = max(a,
    b)`` against a collider, where two corners press at once when it lies flat, so ``omega^2
    <= 2 k max(1/m, l^2 / I)`` (exact for a box lying flat); between two bodies, the inverse
    masses of both add, a box's lever up to its corner ``sqrt(a^2 + b^2)``, two points for two
    boxes. The limit is ``INTEGRATORS[integrator] / omega_max``, as for particles (contact
    damping and friction, not counted, lower it a little).

    >>> from diffsys.systems.physics import RigidWorld, rigid_stability_limit
    >>> w = RigidWorld([("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 0.5],
    ...                contact_stiffness=1e4)
    >>> limit, why = rigid_stability_limit(w)
    >>> round(limit, 5), why
    (0.00645, 'body 1 (box, mass 0.5, inertia 0.00833) on a collider (contact_stiffness 10000)')
    """
    mass = np.asarray(concrete(world.mass), dtype=np.float64)
    inertia = np.asarray(concrete(world.inertia), dtype=np.float64)
    k = abs(float(np.asarray(concrete(world.contact_stiffness))))
    half = np.asarray(world.half_extent)
    box = np.asarray(world.is_box)

    def body(i):
        kind = "box" if box[i] else "disc"
        return f"body {i} ({kind}, mass {mass[i]:.3g}, inertia {inertia[i]:.3g})"

    worst, where = 0.0, "nothing (no contacts)"
    if len(world.plane_offset):
        lever2 = np.where(box, np.max(half, axis=1) ** 2, 0.0)
        omega2 = np.where(box, 2.0 * k * np.maximum(1.0 / mass, lever2 / inertia), k / mass)
        i = int(np.argmax(omega2))
        worst = float(omega2[i])
        where = f"{body(i)} on a collider (contact_stiffness {k:g})"
    corner2 = np.where(box, np.sum(half**2, axis=1), 0.0)
    mobility = 1.0 / mass + corner2 / inertia
    for a, b in np.asarray(world.pairs).tolist():
        points = 2.0 if box[a] and box[b] else 1.0
        omega2 = points * k * (mobility[a] + mobility[b])
        if omega2 > worst:
            worst = float(omega2)
            where = f"{body(a)} against {body(b)} (contact_stiffness {k:g})"
    if worst <= 0:
        return float("inf"), where
    return float(INTEGRATORS[world.integrator] / np.sqrt(worst)), where


def _cross(r, f):
    return r[..., 0] * f[..., 1] - r[..., 1] * f[..., 0]


def _contact_points(world: RigidWorld, c, theta):
    """Offsets ``(B, 4, 2)`` of the contact points from the centres: a box's four corners; a
    disc's centre (its radius is added to the depth, and only the first copy counts)."""
    local = _CORNERS[None] * world.half_extent[:, None, :]  # (B, 4, 2)
    rotated = _rotate(dnp.cos(theta)[:, None], dnp.sin(theta)[:, None], local)
    return dnp.where(world.is_box[:, None, None], rotated, 0.0)


def _rotate(cos, sin, u):
    """``u (..., 2)`` turned by the angle of ``(cos, sin)``."""
    return dnp.stack([cos * u[..., 0] - sin * u[..., 1], sin * u[..., 0] + cos * u[..., 1]], -1)


def _box_distance(q, half):
    """Signed distance from points ``q (K, 2)`` (in a box's frame) to the box of half extents
    ``half (K, 2)``, and its gradient (the outward unit normal), both in the box's frame."""
    d = q - dnp.clip(q, -half, half)
    d2 = dnp.sum(d * d, axis=-1)
    outside = d2 > 0
    dist = dnp.sqrt(dnp.where(outside, d2, 1.0))
    gap = dnp.abs(q) - half  # inside: both < 0, the larger is the nearest face
    x_face = gap[:, 0] >= gap[:, 1]
    side = dnp.where(q >= 0, 1.0, -1.0)
    inward = dnp.stack([dnp.where(x_face, side[:, 0], 0.0), dnp.where(x_face, 0.0, side[:, 1])], -1)
    sdf = dnp.where(outside, dist, dnp.maximum(gap[:, 0], gap[:, 1]))
    normal = dnp.where(outside[:, None], d / dist[:, None], inward)
    return sdf, normal


def body_contacts(world: RigidWorld, state: RigidState):
    """The geometry of the contacts between bodies: ``(a, b, depth (K,), normal (K, 2),
    point (K, 2))`` for the rows of ``world.contact_points``: body ``a`` is pushed along
    ``normal`` (from ``b`` to ``a``) with penetration ``depth`` (> 0 inside) at ``point``.

    >>> import numpy as np
    >>> from diffsys.systems.physics import RigidState, RigidWorld, body_contacts
    >>> w = RigidWorld([("disc", 0.1), ("box", 0.2, 0.1)], mass=[1.0, 1.0], collide=True)
    >>> s = RigidState(np.array([[0.0, 0.19], [0.0, 0.0]]), np.zeros(2), np.zeros((2, 2)),
    ...                np.zeros(2))
    >>> a, b, depth, normal, point = body_contacts(w, s)
    >>> a.tolist(), b.tolist(), depth.round(6).tolist(), normal.tolist()
    ([0], [1], [0.01], [[0.0, 1.0]])
    """
    rows = world.contact_points
    a, corner, b = rows[:, 0], rows[:, 1], rows[:, 2]
    c, theta = state.position, state.angle
    offsets = _contact_points(world, c, theta)  # (B, 4, 2): box corners, zeros for discs
    p = c[a] + offsets[a, np.maximum(corner, 0)]
    ra = dnp.where(corner >= 0, 0.0, world.radius[a])
    # against a disc (only disc-disc rows have a disc b)
    d = p - c[b]
    d2 = dnp.sum(d * d, axis=-1)
    dist = dnp.sqrt(dnp.where(d2 > 0, d2, 1.0))
    disc_depth = ra + world.radius[b] - dist
    disc_normal = d / dist[:, None]
    # against a box: the signed distance in the box's frame
    cos, sin = dnp.cos(theta[b]), dnp.sin(theta[b])
    q = _rotate(cos, -sin, d)
    sdf, local = _box_distance(q, world.half_extent[b])
    is_box = world.is_box[b]
    depth = dnp.where(is_box, ra - sdf, disc_depth)
    normal = dnp.where(is_box[:, None], _rotate(cos, sin, local), disc_normal)
    return a, b, depth, normal, p - ra[:, None] * normal


def _laws(world: RigidWorld):
    if world.contact == "hard":
        return contact_penalty.hard, friction_direction.hard, soft_step.hard
    return contact_penalty, friction_direction, soft_step


def _perp(omega, arm):
    """``omega x arm`` in 2-D."""
    return omega[..., None] * dnp.stack([-arm[..., 1], arm[..., 0]], axis=-1)


def _body_wrench(world: RigidWorld, state: RigidState):
    """Forces ``(B, 2)`` and torques ``(B,)`` from the contacts between bodies."""
    penalty, direction, gate = _laws(world)
    a, b, depth, n, point = body_contacts(world, state)
    c, _, v, omega = state
    arm_a, arm_b = point - c[a], point - c[b]
    rel = v[a] + _perp(omega[a], arm_a) - v[b] - _perp(omega[b], arm_b)
    vn = dnp.sum(rel * n, axis=-1)
    w = world.contact_smoothing
    push = penalty(depth, world.contact_stiffness, smoothing=w)
    fn = push - world.contact_damping * vn * gate(depth, temperature=w)
    slide = direction(rel - vn[:, None] * n, smoothing=world.friction_smoothing)
    f = fn[:, None] * n - world.friction * push[:, None] * slide  # on a; -f on b
    S = world.body_incidence  # (B, K): +1 at a, -1 at b
    torque = np.maximum(S, 0.0) @ _cross(arm_a, f) - np.maximum(-S, 0.0) @ _cross(arm_b, f)
    return S @ f, torque


def _plane_geometry(world: RigidWorld, c, theta):
    """Arms ``(B, 4, P, 2)`` from the centres to the contact points with each plane (a box's
    corners; a disc's rim point facing the plane, ``-r n``, only the first of its four copies
    counting), their depths ``(B, 4, P)``, and which count, ``active (B, 4, 1)``."""
    N = world.plane_normal
    arm = _contact_points(world, c, theta)[:, :, None, :] - world.radius[:, None, None, None] * N
    active = np.where(world.is_box[:, None], 1.0, np.array([1.0, 0.0, 0.0, 0.0])[None])
    depth = world.plane_offset - dnp.sum((c[:, None, None, :] + arm) * N, axis=-1)
    return arm, depth, active[:, :, None]


def plane_depths(world: RigidWorld, state: RigidState):
    """The penetration depths ``(B, 4, P)`` of the bodies' contact points into the colliders
    (> 0 inside): a box's four corners, a disc's rim (its copies 1-3 are ``-inf``).

    >>> import numpy as np
    >>> from diffsys.systems.physics import RigidState, RigidWorld, plane_depths
    >>> w = RigidWorld([("box", 0.2, 0.1)], mass=[1.0])
    >>> s = RigidState(np.array([[0.0, 0.09]]), np.zeros(1), np.zeros((1, 2)), np.zeros(1))
    >>> plane_depths(w, s)[0, :, 0].round(6).tolist()
    [-0.19, -0.19, 0.01, 0.01]
    """
    _, depth, active = _plane_geometry(world, state.position, state.angle)
    return dnp.where(active > 0, depth, -np.inf)


def _wrench(world: RigidWorld, state: RigidState):
    """Forces ``(B, 2)`` and torques ``(B,)`` from gravity, drag and contacts."""
    c, theta, v, omega = state
    force = world.mass[:, None] * world.gravity - world.drag * v
    torque = -world.angular_drag * omega
    if len(world.contact_points):
        f, t = _body_wrench(world, state)
        force, torque = force + f, torque + t
    if not len(world.plane_offset):
        return force, torque
    penalty, direction, gate = _laws(world)
    N = world.plane_normal  # (P, 2)
    arm, depth, active = _plane_geometry(world, c, theta)
    pv = v[:, None, None, :] + _perp(omega[:, None, None], arm)
    w = world.contact_smoothing
    vn = dnp.sum(pv * N, axis=-1)
    push = penalty(depth, world.contact_stiffness, smoothing=w) * active
    fn = push - world.contact_damping * vn * gate(depth, temperature=w) * active
    vt = pv - vn[..., None] * N
    slide = direction(vt, smoothing=world.friction_smoothing)
    f_point = fn[..., None] * N - world.friction * push[..., None] * slide  # (B, 4, P, 2)
    force = force + dnp.sum(f_point, axis=(1, 2))
    torque = torque + dnp.sum(_cross(arm, f_point), axis=(1, 2))
    return force, torque


def _rigid_acceleration(world: RigidWorld, state: RigidState, controls: dict | None):
    """Linear ``(B, 2)`` and angular ``(B,)`` accelerations: the wrench over mass and inertia."""
    force, torque = _wrench(world, state)
    if controls:
        if controls.get("force") is not None:
            force = force + controls["force"]
        if controls.get("torque") is not None:
            torque = torque + controls["torque"]
    return force / world.mass[:, None], torque / world.inertia


def rigid_step(world: RigidWorld, state: RigidState, controls: dict | None = None) -> RigidState:
    """One time step ``world.dt`` with ``world.integrator`` (as :func:`~.dynamics.step` for
    particles, on positions ``(c, theta)`` and velocities ``(v, omega)``); ``controls`` may
    hold ``"force" (B, 2)`` and ``"torque" (B,)``, held over the step."""
    dt = world.dt
    c, th, v, om = state
    a, al = _rigid_acceleration(world, state, controls)
    if world.integrator == "euler":
        v, om = v + dt * a, om + dt * al
        return RigidState(c + dt * v, th + dt * om, v, om)
    if world.integrator == "verlet":
        c1, th1 = c + dt * v + (0.5 * dt * dt) * a, th + dt * om + (0.5 * dt * dt) * al
        a1, al1 = _rigid_acceleration(
            world, RigidState(c1, th1, v + dt * a, om + dt * al), controls
        )
        return RigidState(c1, th1, v + (0.5 * dt) * (a + a1), om + (0.5 * dt) * (al + al1))
    h = 0.5 * dt
    s2 = RigidState(c + h * v, th + h * om, v + h * a, om + h * al)
    a2, al2 = _rigid_acceleration(world, s2, controls)
    s3 = RigidState(c + h * s2.velocity, th + h * s2.angular_velocity, v + h * a2, om + h * al2)
    a3, al3 = _rigid_acceleration(world, s3, controls)
    s4 = RigidState(
        c + dt * s3.velocity, th + dt * s3.angular_velocity, v + dt * a3, om + dt * al3
    )
    a4, al4 = _rigid_acceleration(world, s4, controls)
    k = dt / 6.0
    return RigidState(
        c + k * (v + 2.0 * s2.velocity + 2.0 * s3.velocity + s4.velocity),
        th + k * (om + 2.0 * s2.angular_velocity + 2.0 * s3.angular_velocity
                  + s4.angular_velocity),
        v + k * (a + 2.0 * a2 + 2.0 * a3 + a4),
        om + k * (al + 2.0 * al2 + 2.0 * al3 + al4),
    )


def simulate_rigid(
    world: RigidWorld,
    state: RigidState,
    controls: Any = None,
    steps: int | None = None,
    *,
    checkpoint: Any = None,
    replay: bool | str = "auto",
    record: bool = True,
    probe: RigidState | None = None,
):
    """Run ``steps`` steps of a :class:`RigidWorld` under ``ds.scan``; returns
    ``(final_state, trajectory)`` (the stacked states, or ``None`` with ``record=False``).
    ``probe``: a :class:`RigidState` of zeros with a leading ``steps`` axis, added to the state
    before each step (its gradient is the adjoint of every step, as in ``simulate``).

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

    _warn_if_overlapping(world, state)

    def body(s, inputs):
        u, p = (None, None) if inputs is None else inputs
        if p is not None:
            s = RigidState(*(a + b for a, b in zip(s, p, strict=True)))
        s = rigid_step(world, s, u)
        return s, (s if record else None)

    xs = None if controls is None and probe is None else (controls, probe)
    end, trajectory = scan(body, state, xs, length=steps, checkpoint=checkpoint, replay=replay)
    _warn_if_edges_cross(world, state, end, trajectory)
    return end, trajectory


def edge_crossings(world: RigidWorld, position: Array, angle: Array) -> list[tuple[int, int, int]]:
    """The box-box pairs that overlap with no corner of either inside the other (their edges
    cross, as a plus sign), which the corner contacts miss: ``[(index, a, b), ...]`` over the
    leading axis of ``position (..., B, 2)`` and ``angle (..., B)`` (plain values).

    >>> import numpy as np
    >>> from diffsys.systems.physics import RigidWorld, edge_crossings
    >>> w = RigidWorld([("box", 0.5, 0.05), ("box", 0.05, 0.5)], mass=[1.0, 1.0], collide=True)
    >>> edge_crossings(w, np.zeros((1, 2, 2)), np.zeros((1, 2)))   # a plus sign
    [(0, 0, 1)]
    """
    c = np.asarray(concrete(position), dtype=np.float64).reshape(-1, len(world.is_box), 2)
    th = np.asarray(concrete(angle), dtype=np.float64).reshape(len(c), -1)
    half = np.asarray(world.half_extent)
    axes = np.stack([np.stack([np.cos(th), np.sin(th)], -1),
                     np.stack([-np.sin(th), np.cos(th)], -1)], -2)  # (T, B, 2 axes, 2)
    corners = c[:, :, None, :] + np.einsum("kd,bd,tbde->tbke", _CORNERS, half, axes)
    found = []
    for i, j in world.pairs.tolist():
        if not (world.is_box[i] and world.is_box[j]):
            continue
        overlap = np.ones(len(c), dtype=bool)
        for u in np.concatenate([axes[:, i], axes[:, j]], axis=1).transpose(1, 0, 2):  # (T, 2)
            reach = sum(
                half[k, d] * np.abs(np.sum(axes[:, k, d] * u, -1)) for k in (i, j) for d in (0, 1)
            )
            overlap &= np.abs(np.sum((c[:, i] - c[:, j]) * u, -1)) < reach
        inside = np.zeros(len(c), dtype=bool)
        for a, b in ((i, j), (j, i)):
            q = np.einsum("tkd,ted->tke", corners[:, a] - c[:, b, None], axes[:, b])
            inside |= np.any(np.all(np.abs(q) < half[b], axis=-1), axis=-1)
        found += [(int(t), i, j) for t in np.flatnonzero(overlap & ~inside)]
    return sorted(found)


def _warn_if_edges_cross(world, start, end, trajectory) -> None:
    """A warning naming the first two boxes whose edges cross with no corner inside, in the
    recorded trajectory (or, without one, at the start and the end)."""
    if not any(world.is_box[i] and world.is_box[j] for i, j in world.pairs.tolist()):
        return
    if trajectory is not None:
        position, angle, offset = trajectory.position, trajectory.angle, 1
    else:
        position = np.stack([np.asarray(concrete(x)) for x in (start.position, end.position)])
        angle = np.stack([np.asarray(concrete(x)) for x in (start.angle, end.angle)])
        offset = 0
    hits = edge_crossings(world, position, angle)
    if hits:
        t, a, b = hits[0]
        when = f"after step {t + 1}" if offset else ("at the start" if t == 0 else "at the end")
        warnings.warn(
            f"simulate_rigid: boxes {a} and {b} cross edge to edge with no corner inside the "
            f"other ({when}, {len(hits)} state(s) in all): box-box contact acts at corners only, "
            "so they pass through each other; use smaller steps, thicker boxes or discs",
            stacklevel=3,
        )


def _warn_if_overlapping(world: RigidWorld, state: RigidState) -> None:
    """A warning naming the two bodies when bodies are created overlapping."""
    if not len(world.contact_points):
        return
    plain = RigidState(*(np.asarray(concrete(a)) for a in state))
    a, b, depth, _, _ = body_contacts(tree_map(lambda x: np.asarray(concrete(x)), world), plain)
    depth = np.asarray(depth)
    k = int(np.argmax(depth))
    if depth[k] > 10.0 * float(np.asarray(concrete(world.contact_smoothing))):
        warnings.warn(
            f"simulate_rigid: bodies {int(a[k])} and {int(b[k])} are created overlapping by "
            f"{depth[k]:.3g}: the first steps push them apart hard",
            stacklevel=3,
        )
