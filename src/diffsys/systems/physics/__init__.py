"""``diffsys.systems.physics``: a differentiable physics engine.

Particles joined by damped springs, under gravity and drag, with smooth contact against
half-plane colliders (and between particles), advanced by semi-implicit Euler, velocity
Verlet or RK4 under :func:`diffsys.scan` (checkpoint policies, graph replay). Everything a
user may learn is differentiable: initial state, masses, stiffness, damping, rest lengths,
contact and friction constants, control sequences and controller parameters.

- :class:`World`, :class:`State`: what is simulated; :func:`check_state`,
  :func:`stability_limit` (with a :class:`StabilityWarning` at construction).
- :func:`contact_penalty`, :func:`friction_direction`: the contact laws, each a
  :class:`diffsys.relax.Relaxation` (smooth law, ``.hard`` limit, ``.gap``).
- :func:`forces`, :func:`step`, :func:`energy`: the equations of motion.
- :func:`simulate`: a rollout; :func:`mismatch`: smooth vs hard contact over a rollout.
- :class:`RigidWorld`, :class:`RigidState`, :func:`simulate_rigid`: 2-D discs and boxes
  with inertia, in contact with the colliders and with each other (:func:`body_contacts`);
  :func:`rigid_stability_limit` (also through :func:`stability_limit`).
- :func:`gradient_report`: per-step gradient norms, explosion and contact-induced jumps.
- :func:`simulation_stage`: a ``pipeline.Stage`` (kind ``relaxed``) running a simulation.

See docs/physics.md.
"""

from .contact import contact_penalty, friction_direction
from .dynamics import (
    acceleration,
    contact_forces,
    energy,
    external_forces,
    forces,
    pair_forces,
    spring_forces,
    step,
)
from .health import GradientReport, gradient_report
from .rigid import (
    RigidState,
    RigidWorld,
    body_contacts,
    edge_crossings,
    plane_depths,
    rigid_stability_limit,
    rigid_step,
    simulate_rigid,
)
from .simulate import RECORD, mismatch, simulate
from .stages import simulation_stage
from .world import INTEGRATORS, StabilityWarning, State, World, check_state, stability_limit

__all__ = [
    "GradientReport",
    "INTEGRATORS",
    "RECORD",
    "RigidState",
    "RigidWorld",
    "StabilityWarning",
    "State",
    "World",
    "acceleration",
    "body_contacts",
    "edge_crossings",
    "check_state",
    "contact_forces",
    "contact_penalty",
    "energy",
    "external_forces",
    "forces",
    "friction_direction",
    "gradient_report",
    "mismatch",
    "pair_forces",
    "plane_depths",
    "rigid_stability_limit",
    "rigid_step",
    "simulate",
    "simulate_rigid",
    "simulation_stage",
    "spring_forces",
    "stability_limit",
    "step",
]
