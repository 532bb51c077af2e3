"""Peak memory of a long differentiated rollout with the binomial checkpoint policy.

``python benchmarks/physics_long_rollout.py STEPS SNAPSHOTS`` differentiates the final height
of docs/physics.md's triangle (springs, ground contact, friction) after STEPS steps with
``checkpoint=("binomial", SNAPSHOTS)`` and ``record=None``, and prints tracemalloc's peak
and the wall time (under tracemalloc). Issue 15: 100,000 steps in under 10 MiB.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys.systems.physics import State, World, simulate

X0 = np.array([[0.0, 0.3], [0.3, 0.3], [0.15, 0.55]])
V0 = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
WORLD = World(
    mass=[1.0, 1.0, 1.0], springs=[(0, 1), (1, 2), (0, 2)], positions=X0, stiffness=300.0,
    damping=2.0, radius=0.02, friction=0.4, friction_smoothing=0.05, contact_stiffness=5e3,
    contact_damping=5.0, dt=2e-3,
)


def main(steps: int, snapshots: int) -> None:
    def height(v0):
        end, _ = simulate(WORLD, State(X0, v0), steps=steps,
                          checkpoint=("binomial", snapshots), record=None)
        return dnp.sum(end.position[:, 1])

    tracemalloc.start()
    t = time.perf_counter()
    ds.grad(height)(V0)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"{steps} steps, binomial({snapshots}): peak {peak:.2f} MiB, {seconds:.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 24)
