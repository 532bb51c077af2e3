"""``World`` (what is simulated: particles, springs, colliders, constants) and ``State``.

A world is an :class:`diffsys.nn.Module`: its float arrays (masses, stiffness, damping, rest
lengths, gravity, drag, contact and friction constants) are pytree leaves, so ``ds.grad``
differentiates with respect to a whole world; its structure (which particles a spring joins,
the colliders, the time step, the integrator, the contact mode) is static.

Coordinates are 2-D or 3-D; the last coordinate is "up" (``y`` in 2-D). Colliders are
half-planes ``normal . x >= offset`` (the ground is ``y >= 0``); a particle of radius ``r``
touches one when ``normal . x - offset < r``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ...core.tracer import Tracer
from ...core.tracer import concrete as _plain
from ...nn.module import Module, static

Array = Any

__all__ = [
    "INTEGRATORS",
    "StabilityWarning",
    "State",
    "World",
    "check_state",
    "stability_limit",
    "warn_if_unstable",
]

#: The integrators, and the largest stable ``omega * dt`` of each on an undamped oscillator.
INTEGRATORS: dict[str, float] = {"euler": 2.0, "verlet": 2.0, "rk4": 2.785}


class StabilityWarning(UserWarning):
    """The time step is beyond the estimated stability limit of the explicit integrator."""


class State(NamedTuple):
    """Positions and velocities of the particles, each ``(n, dim)``."""

    position: Array
    velocity: Array


def _floats(name: str, value, shape: tuple[int, ...] | None, who: str = "World") -> np.ndarray:
    if isinstance(value, Tracer):
        return value
    a = np.asarray(value, dtype=np.float64)
    if shape is not None:
        try:
            a = np.broadcast_to(a, shape).copy()
        except ValueError:
            raise ValueError(
                f"{who}: {name} must broadcast to shape {shape}, got shape {a.shape}"
            ) from None
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0].tolist() if a.ndim else []
        raise ValueError(f"{who}: {name} must be finite, got {a.ravel()[:8]} (first bad at {bad})")
    return a


def _incidence(n: int, pairs: np.ndarray) -> np.ndarray:
    """``B`` with ``B[i, s] = -1, B[j, s] = +1`` for pair ``s = (i, j)``: node forces ``-B f``
    for a pull ``f`` along ``x_j - x_i`` (a dense matrix: scatter-add as one matmul)."""
    B = np.zeros((n, len(pairs)))
    if len(pairs):
        B[pairs[:, 0], np.arange(len(pairs))] = -1.0
        B[pairs[:, 1], np.arange(len(pairs))] = 1.0
    return B


def _given_pairs(collide, n: int, owner: str, things: str) -> list[list[int]]:
    """The explicit ``collide=[(i, j), ...]`` pairs as a list, each checked to name two
    different ``things`` in ``range(n)`` (the error names ``owner`` and the pair)."""
    pairs = np.asarray(collide, dtype=np.int64).reshape(-1, 2).tolist()
    for q, (i, j) in enumerate(pairs):
        if not (0 <= i < n and 0 <= j < n) or i == j:
            raise ValueError(
                f"{owner}: collide pair {q} is ({i}, {j}); give two different {things} in "
                f"range(n={n})"
            )
    return pairs


def _contact_pairs(collide, springs: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """The particle pairs in contact: every two of positive radius not joined by a spring
    (``collide=True``), none (``False``), or the pairs given."""
    n = len(radius)
    if collide is True:
        joined = {tuple(sorted(p)) for p in springs.tolist()}
        pairs = [
            (i, j)
            for i, j in itertools.combinations(range(n), 2)
            if radius[i] > 0 and radius[j] > 0 and (i, j) not in joined
        ]
    elif collide is False or collide is None:
        pairs = []
    else:
        pairs = _given_pairs(collide, n, "World", "particles")
        for q, (i, j) in enumerate(pairs):
            if radius[i] <= 0 or radius[j] <= 0:
                raise ValueError(
                    f"World: collide pair {q} ({i}, {j}) joins a particle of radius "
                    f"{min(radius[i], radius[j]):g}; contacts need radius > 0"
                )
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


class World(Module):
    """Particles joined by springs, with gravity, drag and contact with half-plane colliders.

    ``mass (n,)`` (> 0); ``springs (m, 2)`` particle indices; ``stiffness``, ``damping``,
    ``rest_length (m,)`` (``rest_length=None`` takes the distances in ``positions``);
    ``radius (n,)`` for contacts; ``gravity (dim,)``; ``drag`` (force ``-drag * v``);
    colliders ``planes = [(normal, offset), ...]`` (default: the ground ``y >= 0``; ``[]`` for
    none); ``contact_stiffness``, ``contact_damping`` (a restitution-like dissipation while in
    contact), ``friction`` (Coulomb ``mu``), ``contact_smoothing`` and ``friction_smoothing``
    (the widths of the smooth laws in :mod:`.contact`); ``collide=True`` adds contacts between
    every two particles of positive radius not joined by a spring, ``collide=[(i, j), ...]``
    between those pairs only (e.g. several independent scenes batched in one world). ``dt``,
    ``integrator`` (``"euler"``: semi-implicit Euler, ``"verlet"``: velocity Verlet,
    ``"rk4"``) and ``contact`` (``"relaxed"`` or ``"hard"``) are static settings.

    >>> import numpy as np
    >>> from diffsys.systems.physics import World
    >>> w = World(mass=[1.0, 1.0], springs=[(0, 1)], stiffness=100.0,
    ...           positions=[[0.0, 1.0], [1.0, 1.0]], dt=1e-3)
    >>> w.n, w.dim, w.rest_length
    (2, 2, array([1.]))
    """

    mass: Array
    radius: Array
    stiffness: Array
    damping: Array
    rest_length: Array
    gravity: Array
    drag: Array
    contact_stiffness: Array
    contact_damping: Array
    friction: Array
    contact_smoothing: Array
    friction_smoothing: Array
    springs: np.ndarray = static()
    pairs: np.ndarray = static()
    plane_normal: np.ndarray = static()
    plane_offset: np.ndarray = static()
    spring_incidence: np.ndarray = static()
    pair_incidence: np.ndarray = static()
    dt: float = static()
    integrator: str = static()
    contact: str = static()

    def __init__(
        self,
        mass,
        springs=(),
        *,
        stiffness=0.0,
        damping=0.0,
        rest_length=None,
        positions=None,
        radius=0.0,
        gravity=None,
        drag=0.0,
        planes=None,
        contact_stiffness=1e4,
        contact_damping=0.0,
        friction=0.0,
        contact_smoothing=1e-3,
        friction_smoothing=1e-2,
        collide: bool | Sequence[tuple[int, int]] = False,
        dt: float = 1e-3,
        integrator: str = "euler",
        contact: str = "relaxed",
        dim: int | None = None,
        check: bool = True,
    ) -> None:
        mass = _floats("mass", mass, None)
        if mass.ndim != 1 or mass.size == 0:
            raise ValueError(
                f"World: mass must be a non-empty 1-D array (n,), got shape {mass.shape}"
            )
        n = mass.shape[0]
        if not isinstance(mass, Tracer) and np.any(mass <= 0):
            i = int(np.argmax(mass <= 0))
            raise ValueError(f"World: particle {i} has mass {float(mass[i])}; masses must be > 0")
        if dim is None:
            dim = (
                np.shape(positions)[-1]
                if positions is not None
                else (np.shape(gravity)[-1] if gravity is not None else 2)
            )
        if dim not in (2, 3):
            raise ValueError(f"World: dim must be 2 or 3, got {dim}")
        springs = np.asarray(springs, dtype=np.int64).reshape(-1, 2)
        m = len(springs)
        for s, (i, j) in enumerate(springs):
            if not (0 <= i < n and 0 <= j < n):
                raise ValueError(
                    f"World: spring {s} joins particles ({i}, {j}), out of range for n={n}"
                )
            if i == j:
                raise ValueError(f"World: spring {s} joins particle {i} to itself")
        if rest_length is None:
            if m and positions is None:
                raise ValueError(
                    "World: give rest_length=(m,) or positions=(n, dim) to take it from"
                )
            pos = np.asarray(positions, dtype=np.float64) if m else np.zeros((n, dim))
            rest_length = np.linalg.norm(pos[springs[:, 1]] - pos[springs[:, 0]], axis=-1)
        rest_length = _floats("rest_length", rest_length, (m,))
        if not isinstance(rest_length, Tracer) and np.any(rest_length <= 0):
            s = int(np.argmax(rest_length <= 0))
            i, j = springs[s]
            raise ValueError(
                f"World: spring {s} (particles {i}-{j}) has rest length {float(rest_length[s])}; "
                "zero-length springs have no direction: give a rest length > 0"
            )
        self.mass = mass
        self.radius = _floats("radius", radius, (n,))
        self.stiffness = _floats("stiffness", stiffness, (m,))
        self.damping = _floats("damping", damping, (m,))
        self.rest_length = rest_length
        if gravity is None:
            gravity = np.zeros(dim)
            gravity[-1] = -9.81
        self.gravity = _floats("gravity", gravity, (dim,))
        self.drag = _floats("drag", drag, ())
        self.contact_stiffness = _floats("contact_stiffness", contact_stiffness, ())
        self.contact_damping = _floats("contact_damping", contact_damping, ())
        self.friction = _floats("friction", friction, ())
        self.contact_smoothing = _floats("contact_smoothing", contact_smoothing, ())
        self.friction_smoothing = _floats("friction_smoothing", friction_smoothing, ())
        if planes is None:
            up = np.zeros(dim)
            up[-1] = 1.0
            planes = [(up, 0.0)]
        normals = np.array([np.asarray(nv, dtype=np.float64) for nv, _ in planes]).reshape(-1, dim)
        lengths = np.linalg.norm(normals, axis=-1)
        if np.any(lengths == 0):
            raise ValueError(f"World: plane {int(np.argmax(lengths == 0))} has a zero normal")
        self.plane_normal = normals / lengths[:, None]
        self.plane_offset = np.array([float(b) for _, b in planes], dtype=np.float64) / lengths
        self.pairs = _contact_pairs(collide, springs, np.asarray(_plain(self.radius)))
        self.springs = springs
        self.spring_incidence = _incidence(n, springs)
        self.pair_incidence = _incidence(n, self.pairs)
        if integrator not in INTEGRATORS:
            raise ValueError(
                f"World: integrator must be one of {sorted(INTEGRATORS)}, got {integrator!r}"
            )
        if contact not in ("relaxed", "hard"):
            raise ValueError(f"World: contact must be 'relaxed' or 'hard', got {contact!r}")
        if not (isinstance(dt, int | float) and dt > 0 and np.isfinite(dt)):
            raise ValueError(f"World: dt must be a positive number, got {dt!r}")
        self.dt = float(dt)
        self.integrator = integrator
        self.contact = contact
        if check:
            _warn_if_unstable(self)

    @property
    def n(self) -> int:
        """The number of particles."""
        return int(np.shape(self.mass)[0])

    @property
    def dim(self) -> int:
        """The number of coordinates (2 or 3)."""
        return int(np.shape(self.gravity)[0])

    def hard(self) -> World:
        """This world with the hard contact laws (for evaluation)."""
        return self.replace(contact="hard")

    def relaxed(self) -> World:
        """This world with the smooth contact laws (for training)."""
        return self.replace(contact="relaxed")


def stability_limit(world: Any) -> tuple[float, str]:
    """An estimate of the largest stable time step, and what limits it, for a :class:`World`
    or a :class:`~.rigid.RigidWorld` (see :func:`~.rigid.rigid_stability_limit`).

    For particles, the fastest frequency is bounded (Gershgorin) by ``omega_i^2 <= 2 sum_s k_s
    / m_i`` over the springs ``s`` at particle ``i``, and ``k_contact / m_i`` for contacts; the
    limit is ``INTEGRATORS[integrator] / omega_max``.

    >>> from diffsys.systems.physics import World, stability_limit
    >>> w = World(mass=[1.0, 1.0], springs=[(0, 1)], stiffness=100.0, rest_length=[1.0],
    ...           contact_stiffness=1.0)
    >>> limit, why = stability_limit(w)
    >>> round(limit, 4), why
    (0.1414, 'particle 0 through spring 0 (stiffness 100)')
    """
    if not isinstance(world, World):
        from .rigid import RigidWorld, rigid_stability_limit

        if isinstance(world, RigidWorld):
            return rigid_stability_limit(world)
        raise TypeError(
            f"stability_limit: expected a World or a RigidWorld, got {type(world).__name__}"
        )
    mass = np.asarray(_plain(world.mass))
    k = np.abs(np.asarray(_plain(world.stiffness)))
    omega2 = 2.0 * np.abs(world.spring_incidence) @ k / mass
    i = int(np.argmax(omega2))
    worst = omega2[i]
    where = f"particle {i}"
    if k.size:
        at_i = np.flatnonzero(world.spring_incidence[i])
        if at_i.size:
            s = int(at_i[np.argmax(k[at_i])])
            where += f" through spring {s} (stiffness {k[s]:g})"
    kc = float(np.asarray(_plain(world.contact_stiffness)))
    if len(world.plane_offset) or len(world.pairs):
        j = int(np.argmin(mass))
        if kc / mass[j] > worst:
            worst = kc / mass[j]
            where = f"particle {j} in contact (contact_stiffness {kc:g})"
    if worst <= 0:
        return float("inf"), "nothing (no springs, no contacts)"
    return float(INTEGRATORS[world.integrator] / np.sqrt(worst)), where


def _warn_if_unstable(world: World) -> None:
    if any(isinstance(v, Tracer) for v in (world.mass, world.stiffness, world.contact_stiffness)):
        return
    limit, where = stability_limit(world)
    warn_if_unstable("World", world.dt, world.integrator, limit, where,
                     "a softer spring or a heavier particle", stacklevel=3)


def warn_if_unstable(
    who: str, dt: float, integrator: str, limit: float, where: str, remedy: str,
    stacklevel: int = 2,
) -> None:
    """A :class:`StabilityWarning` from ``who`` when ``dt > limit`` (the estimated limit of
    ``integrator``, set by ``where``), suggesting ``dt < limit`` or ``remedy``.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_if_unstable("Me", 0.1, "euler", 0.01, "body 0", "a softer spring")
    >>> print(str(w[0].message)[:59])
    Me: dt=0.1 is beyond the estimated stability limit 0.01 of
    """
    if dt > limit:
        warnings.warn(
            f"{who}: dt={dt:g} is beyond the estimated stability limit {limit:.3g} of "
            f"{integrator!r} (set by {where}); use dt < {limit:.3g}, {remedy}",
            StabilityWarning,
            stacklevel=stacklevel + 1,
        )


def check_state(world: World, state: State) -> None:
    """Check a state against a world (plain arrays only): shapes, NaN or infinite values (an
    error naming the particle), springs whose ends coincide (an error naming the spring),
    particles overlapping each other, or a collider by more than ``10 * contact_smoothing``
    (a warning naming them).

    >>> import numpy as np
    >>> from diffsys.systems.physics import World, State, check_state
    >>> w = World(mass=[1.0], dt=1e-3)
    >>> check_state(w, State(np.array([[0.0, np.nan]]), np.zeros((1, 2))))
    Traceback (most recent call last):
    ...
    ValueError: simulate: particle 0 has a non-finite position [0.0, nan]
    """
    n, dim = world.n, world.dim
    for name, a in zip(("position", "velocity"), state, strict=True):
        if np.shape(a) != (n, dim):
            raise ValueError(
                f"simulate: state.{name} must have shape (n, dim) = {(n, dim)}, got {np.shape(a)}"
            )
        a = _plain(a)
        bad = ~np.all(np.isfinite(a), axis=-1)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"simulate: particle {i} has a non-finite {name} {np.asarray(a)[i].tolist()}"
            )
    x = np.asarray(_plain(state.position))
    for s, (i, j) in enumerate(world.springs):
        if np.allclose(x[i], x[j], rtol=0.0, atol=1e-12):
            raise ValueError(
                f"simulate: spring {s} joins particles {i} and {j} at the same point "
                f"{x[i].tolist()}; "
                "its direction is undefined: move one of them"
            )
    r = np.asarray(_plain(world.radius))
    for i, j in world.pairs:
        gap = np.linalg.norm(x[j] - x[i]) - r[i] - r[j]
        if gap < 0:
            warnings.warn(
                f"simulate: particles {i} and {j} are created overlapping by {-gap:.3g}",
                stacklevel=3,
            )
    depth = r[:, None] + world.plane_offset - x @ world.plane_normal.T
    tolerance = 10.0 * float(np.asarray(_plain(world.contact_smoothing)))
    if depth.size and np.any(depth > tolerance):
        i, p = np.unravel_index(int(np.argmax(depth)), depth.shape)
        warnings.warn(
            f"simulate: particle {i} starts inside collider {p} by {depth[i, p]:.3g} (more than "
            f"10 x contact_smoothing = {tolerance:.3g}): the first steps push it out hard",
            stacklevel=3,
        )
