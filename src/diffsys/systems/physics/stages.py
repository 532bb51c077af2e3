"""A ready-made :class:`diffsys.pipeline.Stage` for a simulation (kind ``relaxed``).

The stage runs the smooth contact laws in training and the hard ones at inference, so
``pipe.mismatch(batch)`` reports what the contact smoothing costs, like any relaxation. The
world constants named in ``learn`` are the stage's parameters (trained with the rest of the
pipeline); the other constants stay fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...pipeline import Stage
from .rigid import RigidState, RigidWorld, simulate_rigid
from .simulate import simulate
from .world import State, World

__all__ = ["simulation_stage"]


def simulation_stage(
    name: str,
    world: World | RigidWorld,
    steps: int,
    *,
    learn: Sequence[str] = (),
    output: str = "trajectory",
    checkpoint: Any = None,
    inputs: str | Sequence[str] | None = None,
) -> Stage:
    """A stage simulating ``steps`` steps of ``world`` from its input, an initial
    :class:`~.world.State` (or :class:`~.rigid.RigidState` for a :class:`~.rigid.RigidWorld`),
    optionally followed by per-step controls (a second input, as in :func:`~.simulate.simulate`).

    ``learn``: names of the world's float fields that are the stage's parameters
    (``"stiffness"``, ``"friction"``, ...). ``output``: ``"trajectory"`` (the positions of every
    step, ``(steps, n, dim)``) or ``"final"`` (the final state). ``checkpoint`` is
    ``ds.scan``'s policy. Training uses ``world`` with smooth contact, inference
    ``world.hard()``.

    >>> import numpy as np
    >>> from diffsys.systems.physics import State, World, simulation_stage
    >>> w = World(mass=[1.0], radius=0.1, dt=1e-3)
    >>> stage = simulation_stage("fall", w, 100, learn=("contact_stiffness",))
    >>> stage.kind, sorted(stage.params)
    ('relaxed', ['contact_stiffness'])
    >>> s0 = State(np.array([[0.0, 0.2]]), np.zeros((1, 2)))
    >>> stage.fn(stage.params, s0).shape
    (100, 1, 2)
    """
    if not isinstance(world, World | RigidWorld):
        raise TypeError(
            f"simulation_stage {name!r}: world must be a World or a RigidWorld, got "
            f"{type(world).__name__}"
        )
    if output not in ("trajectory", "final"):
        raise ValueError(
            f"simulation_stage {name!r}: output must be 'trajectory' or 'final', got {output!r}"
        )
    learnable = sorted(world.named_parameter_dict())
    unknown = [k for k in learn if k not in learnable]
    if unknown:
        raise ValueError(
            f"simulation_stage {name!r}: cannot learn {unknown}; the learnable constants of "
            f"{type(world).__name__} are {learnable}"
        )
    params = {k: np.asarray(getattr(world, k)) for k in learn}
    rigid = isinstance(world, RigidWorld)

    def run(w, state, controls=None):
        if rigid:
            end, traj = simulate_rigid(w, RigidState(*state), controls, steps,
                                       checkpoint=checkpoint, record=output == "trajectory")
            return end if output == "final" else traj.position
        end, traj = simulate(w, State(*state), controls, steps, checkpoint=checkpoint,
                             record="position" if output == "trajectory" else None)
        return end if output == "final" else traj

    def relaxed(p, state, controls=None):
        return run(world.replace(contact="relaxed", **p), state, controls)

    def hard(p, state, controls=None):
        return run(world.replace(contact="hard", **p), state, controls)

    return Stage(name, relaxed, kind="relaxed", params=params, hard=hard, inputs=inputs)

