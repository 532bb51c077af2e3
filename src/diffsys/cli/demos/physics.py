"""``diffsys demo physics``: gradients through contact, learned by ``diffsys.systems.physics``.

1. Billiards (as in DiffTaichi): the cue ball's initial velocity is optimised so that the
   target ball, struck through a smooth contact, ends at the pocket; several random starts,
   each judged with the hard contact law.
2. System identification: stiffness, damping and friction of a mass-spring body bouncing and
   sliding on the ground are recovered from a noisy observed trajectory (L-BFGS on exact
   gradients of the whole rollout).
3. Gradient health of the two rollouts, and the smooth/hard contact mismatch.

Writes ``summary.json`` and PNG plots to the report folder.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import optim
from diffsys.systems.physics import State, World, gradient_report, mismatch, simulate

from . import report_folder

TABLE = (2.0, 1.0)  # width, height of the table (top view: no gravity)
RADIUS = 0.05
POCKET = np.array([1.9, 0.9])


def billiards_world(contact: str = "relaxed") -> World:
    """Two balls on a table with cushions, rolling resistance as drag, elastic-ish contact."""
    w, h = TABLE
    planes = [([1.0, 0.0], 0.0), ([-1.0, 0.0], -w), ([0.0, 1.0], 0.0), ([0.0, -1.0], -h)]
    return World(
        mass=[1.0, 1.0], radius=RADIUS, gravity=[0.0, 0.0], drag=0.4, planes=planes,
        contact_stiffness=2e4, contact_damping=2.0, contact_smoothing=2e-3, collide=True,
        dt=2e-3, contact=contact,
    )


def shot_loss(world: World, cue: np.ndarray, target: np.ndarray, steps: int):
    def loss(v0):
        x0 = np.stack([cue, target])
        velocity = dnp.stack([v0, np.zeros(2)])
        end, _ = simulate(world, State(x0, velocity), steps=steps, record=None)
        return dnp.sum((end.position[1] - POCKET) ** 2)

    return loss


def learn_shot(cue, target, steps, iterations, rng):
    """Adam on the cue velocity, from an aim at the target ball's centre."""
    world = billiards_world()
    loss = shot_loss(world, cue, target, steps)
    aim = target - cue
    v = 2.5 * aim / np.linalg.norm(aim) + 0.05 * rng.normal(size=2)
    opt = optim.adam(0.08)
    state = opt.init(v)
    history = []
    value_and_grad = ds.value_and_grad(loss)
    for _ in range(iterations):
        value, g = value_and_grad(v)
        history.append(float(value))
        updates, state = opt.update(g, state, v)
        v = optim.apply_updates(v, updates)
    hard = shot_loss(billiards_world("hard"), cue, target, steps)(v)
    return v, history, float(np.sqrt(hard))


def random_start(rng):
    cue = np.array([rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.8)])
    target = np.array([rng.uniform(1.0, 1.4), rng.uniform(0.3, 0.7)])
    return cue, target


def sysid_world(stiffness, damping, friction) -> World:
    x0 = np.array([[0.0, 0.3], [0.3, 0.3], [0.15, 0.55]])
    return World(
        mass=[1.0, 1.0, 1.0], springs=[(0, 1), (1, 2), (0, 2)], stiffness=stiffness,
        damping=damping, positions=x0, radius=0.02, friction=friction,
        contact_stiffness=5e3, contact_damping=5.0, contact_smoothing=1e-3,
        friction_smoothing=0.05, dt=2e-3,
    )


SYSID_X0 = np.array([[0.0, 0.3], [0.3, 0.3], [0.15, 0.55]])
SYSID_V0 = np.array([[1.5, 0.0], [1.5, 0.0], [1.2, 0.5]])
TRUE = {"stiffness": 300.0, "damping": 2.0, "friction": 0.4}


def identify(steps: int, noise: float, rng):
    """Recover (stiffness, damping, friction) from a noisy trajectory by L-BFGS."""
    truth = sysid_world(**TRUE)
    _, observed = simulate(truth, State(SYSID_X0, SYSID_V0), steps=steps)
    observed = observed + noise * rng.normal(size=observed.shape)

    def loss(log_params):
        p = {k: dnp.exp(v) for k, v in log_params.items()}
        world = truth.replace(
            stiffness=dnp.broadcast_to(p["stiffness"], (3,)),
            damping=dnp.broadcast_to(p["damping"], (3,)),
            friction=p["friction"],
        )
        _, xs = simulate(world, State(SYSID_X0, SYSID_V0), steps=steps)
        return dnp.mean((xs - observed) ** 2) * 1e4

    start = {"stiffness": np.log(150.0), "damping": np.log(1.0), "friction": np.log(0.2)}
    path = [{k: float(np.exp(v)) for k, v in start.items()}]
    result = optim.minimize(
        loss, start, callback=lambda x: path.append({k: float(np.exp(v)) for k, v in x.items()})
    )
    found = {k: float(np.exp(v)) for k, v in result.x.items()}
    fitted = truth.replace(
        stiffness=np.full(3, found["stiffness"]),
        damping=np.full(3, found["damping"]),
        friction=np.asarray(found["friction"]),
    )
    _, fit = simulate(fitted, State(SYSID_X0, SYSID_V0), steps=steps)
    start_world = sysid_world(150.0, 1.0, 0.2)
    _, initial = simulate(start_world, State(SYSID_X0, SYSID_V0), steps=steps)
    return found, path, observed, fit, initial, result


def main(args: argparse.Namespace) -> int:
    out = report_folder("physics", args)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    quick = bool(args.quick)
    t0 = time.perf_counter()
    summary: dict = {"quick": quick, "seed": args.seed}

    # 1. billiards
    starts, iterations, steps = (1, 12, 350) if quick else (4, 40, 450)
    print(f"[1/3] billiards: {starts} random starts, {iterations} Adam steps each")
    shots = []
    for k in range(starts):
        cue, target = random_start(rng)
        v, history, miss = learn_shot(cue, target, steps, iterations, rng)
        shots.append(
            {"cue": cue.tolist(), "target": target.tolist(), "velocity": v.tolist(),
             "loss": history, "hard_miss": miss, "success": miss < 2 * RADIUS}
        )
        print(f"      start {k}: distance to pocket {np.sqrt(history[0]):.3f} -> "
              f"{np.sqrt(history[-1]):.3f} (hard contact: {miss:.3f})")
    successes = sum(s["success"] for s in shots)
    summary["billiards"] = {"starts": starts, "successes": successes, "shots": shots}
    print(f"      {successes}/{starts} shots end within {2 * RADIUS:g} of the pocket")

    # 2. system identification
    sysid_steps = 200 if quick else 300
    print(f"[2/3] system identification from a noisy {sysid_steps}-step trajectory")
    found, path, observed, fit, initial, result = identify(sysid_steps, 1e-3, rng)
    errors = {k: abs(found[k] - TRUE[k]) / TRUE[k] for k in TRUE}
    for k in TRUE:
        print(f"      {k}: true {TRUE[k]:g}, found {found[k]:.4g} ({100 * errors[k]:.2f}% off)")
    summary["system_identification"] = {
        "true": TRUE, "found": found, "relative_error": errors, "iterations": result.nit,
        "within_2_percent": all(e < 0.02 for e in errors.values()),
    }

    # 3. gradient health and contact mismatch
    print("[3/3] gradient health and smooth/hard contact mismatch")
    shot = shots[0]
    x0 = np.stack([shot["cue"], shot["target"]])
    s0 = State(x0, np.stack([shot["velocity"], [0.0, 0.0]]))
    health = gradient_report(lambda s, xs: dnp.sum((s.position[1] - POCKET) ** 2),
                             billiards_world(), s0, steps=steps)
    gap = mismatch(billiards_world(), s0, steps=steps)
    print("      " + health.summary().replace("\n", "\n      "))
    print(f"      smooth vs hard contact: trajectories differ by at most {gap['trajectory']:.3g}")
    summary["gradient_health"] = {
        "healthy": health.healthy, "exploded_at": health.exploded_at,
        "contact_events": health.contact_events[:20],
        "discontinuities": health.discontinuities[:20],
    }
    summary["mismatch"] = gap
    summary["seconds"] = time.perf_counter() - t0

    if not args.no_plots:
        _plots(out, shots, s0, steps, observed, fit, initial, path, health)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=float)
    print(f"report: {out} ({summary['seconds']:.1f} s)")
    learned = shots[0]["loss"][-1] < shots[0]["loss"][0] and max(errors.values()) < 0.05
    return 0 if learned else 1


def _plots(out, shots, s0, steps, observed, fit, initial, path, health) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    _, xs = simulate(billiards_world(), s0, steps=steps)
    ax.add_patch(_rect(fig))
    ax.plot(xs[:, 0, 0], xs[:, 0, 1], label="cue ball")
    ax.plot(xs[:, 1, 0], xs[:, 1, 1], label="target ball")
    ax.plot(*POCKET, "k*", markersize=12, label="pocket")
    ax.set_xlim(0, TABLE[0]); ax.set_ylim(0, TABLE[1]); ax.set_aspect("equal")  # noqa: E702
    ax.set_title("learned shot (start 0)")
    ax.legend(fontsize=7)
    for k, s in enumerate(shots):
        bx.semilogy(np.sqrt(s["loss"]), label=f"start {k}")
    bx.set_xlabel("Adam step"); bx.set_ylabel("distance to pocket")  # noqa: E702
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "billiards.png"), dpi=100)

    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    for i in range(observed.shape[1]):
        ax.plot(observed[:, i, 0], observed[:, i, 1], ".", markersize=1.5, color="gray")
        ax.plot(initial[:, i, 0], initial[:, i, 1], "--", color="tab:orange")
        ax.plot(fit[:, i, 0], fit[:, i, 1], color="tab:blue")
    ax.set_title("observed (dots), initial guess (dashed), identified (line)")
    for k, true in TRUE.items():
        bx.plot([abs(p[k] - true) / true for p in path], label=k)
    bx.set_yscale("log"); bx.set_xlabel("L-BFGS iteration"); bx.set_ylabel("relative error")  # noqa: E702
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "system_identification.png"), dpi=100)

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.semilogy(health.norms)
    for t, _ in health.contact_events:
        ax.axvline(t, color="gray", lw=0.5)
    ax.set_xlabel("step"); ax.set_ylabel("|dL/d state_t|")  # noqa: E702
    ax.set_title("adjoint norm per step (grey: contact events)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gradient_health.png"), dpi=100)


def _rect(fig):
    from matplotlib.patches import Rectangle

    return Rectangle((0, 0), *TABLE, facecolor="#d8f0d8", edgecolor="k")
