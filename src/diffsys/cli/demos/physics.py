"""``diffsys demo physics``: gradients through contact, learned by ``diffsys.systems.physics``.

1. Billiards (as in DiffTaichi): the cue ball's initial velocity is optimised so that the
   target ball, struck through a smooth contact, ends at the pocket; 20 random starts learned
   in one batched rollout, each judged with the hard contact law (success rate).
2. Soft robot locomotion (DiffTaichi's mass_spring): a 14-mass robot whose leg springs are
   muscles, driven by a small linear controller from a clock, learns to move right; distance
   travelled before and after, with hard contact.
3. System identification: stiffness, damping and friction of a mass-spring body bouncing and
   sliding on the ground are recovered from a noisy observed trajectory (L-BFGS on exact
   gradients of the whole rollout).
4. Gradient health of a shot, and the smooth/hard contact mismatch.

Writes ``summary.json``, PNG plots and an animated GIF of a shot to the report folder.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn, optim
from diffsys.systems.physics import State, World, gradient_report, mismatch, simulate

from . import report_folder

TABLE = (2.0, 1.0)  # width, height of the table (top view: no gravity)
RADIUS = 0.05
POCKET = np.array([1.9, 0.9])


def billiards_world(shots: int = 1, contact: str = "relaxed") -> World:
    """``shots`` independent two-ball tables overlaid in one world (balls ``2k`` and ``2k + 1``
    collide only with each other): one rollout learns every shot at once. Cushions, rolling
    resistance as drag, elastic-ish contact."""
    w, h = TABLE
    planes = [([1.0, 0.0], 0.0), ([-1.0, 0.0], -w), ([0.0, 1.0], 0.0), ([0.0, -1.0], -h)]
    return World(
        mass=np.ones(2 * shots), radius=RADIUS, gravity=[0.0, 0.0], drag=0.4, planes=planes,
        contact_stiffness=2e4, contact_damping=2.0, contact_smoothing=2e-3,
        collide=[(2 * k, 2 * k + 1) for k in range(shots)], dt=2e-3, contact=contact,
    )


def billiards_rollout(world: World, cues, targets, velocities, steps: int, record=None):
    """Positions of every ball after ``steps`` steps, with the cue balls' initial velocities."""
    x0 = np.stack([cues, targets], axis=1).reshape(-1, 2)
    v0 = dnp.stack([velocities, np.zeros_like(cues)], axis=1).reshape(-1, 2)
    return simulate(world, State(x0, v0), steps=steps, record=record)


def learn_shots(cues, targets, steps, iterations, rng):
    """Adam on every cue velocity at once, from aims at the target balls' centres; each shot
    judged with the hard contact law. Returns velocities, per-shot loss histories and misses."""
    shots = len(cues)
    world = billiards_world(shots)

    def loss(v):
        end, _ = billiards_rollout(world, cues, targets, v, steps)
        misses = dnp.sum((end.position[1::2] - POCKET) ** 2, axis=1)
        return dnp.sum(misses), misses

    aim = targets - cues
    v = 2.5 * aim / np.linalg.norm(aim, axis=1, keepdims=True) + 0.05 * rng.normal(size=aim.shape)
    opt = optim.adam(0.08)
    state = opt.init(v)
    history = []
    value_and_grad = ds.value_and_grad(loss, has_aux=True)
    for _ in range(iterations):
        (_, misses), g = value_and_grad(v)
        history.append(np.asarray(misses))
        updates, state = opt.update(g, state, v)
        v = optim.apply_updates(v, updates)
    hard_end, _ = billiards_rollout(billiards_world(shots, "hard"), cues, targets, v, steps)
    miss = np.linalg.norm(hard_end.position[1::2] - POCKET, axis=1)
    return v, np.array(history), miss


def random_starts(rng, count):
    cues = np.stack([rng.uniform(0.2, 0.6, count), rng.uniform(0.2, 0.8, count)], axis=1)
    targets = np.stack([rng.uniform(1.0, 1.4, count), rng.uniform(0.3, 0.7, count)], axis=1)
    return cues, targets


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
    # bounds keep every trial inside the stable range of dt (a stiffer spring would blow up)
    lower = {"stiffness": np.log(10.0), "damping": np.log(0.1), "friction": np.log(0.01)}
    upper = {"stiffness": np.log(3000.0), "damping": np.log(20.0), "friction": np.log(2.0)}
    result = optim.minimize(
        loss, start, bounds=(lower, upper),
        callback=lambda x: path.append({k: float(np.exp(v)) for k, v in x.items()}),
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


# --- soft robot locomotion (DiffTaichi's mass_spring) ---------------------------------------

# two feet under a two-row body, 0.1 apart; springs join every two points at most one cell
# diagonal apart; the springs touching a foot are muscles
ROBOT_GRID = [(0, 0), (1, 0), (3, 0), (4, 0)] + [(i, j) for j in (1, 2) for i in range(5)]
ROBOT_X0 = 0.1 * np.array(ROBOT_GRID, dtype=float) + np.array([0.0, 0.02])
ROBOT_DT = 2e-3


def robot_world(contact: str = "relaxed") -> World:
    """A 14-mass, 33-spring robot on frictional ground; 12 springs are actuated (its legs)."""
    x = ROBOT_X0
    n = len(x)
    reach = 0.1 * np.sqrt(2.0) + 1e-6
    springs = [
        (i, j) for i in range(n) for j in range(i + 1, n) if np.linalg.norm(x[i] - x[j]) < reach
    ]
    return World(
        mass=np.ones(n), springs=springs, positions=x, stiffness=3e3, damping=5.0,
        radius=0.02, friction=1.0, friction_smoothing=0.05, contact_stiffness=1e4,
        contact_damping=20.0, contact_smoothing=2e-3, dt=ROBOT_DT, contact=contact,
    )


def robot_muscles(world: World) -> np.ndarray:
    """1 for the springs with a foot at one end (actuated), 0 for the others."""
    return np.any(world.springs < 4, axis=1).astype(float)


def robot_clock(steps: int, hz: float = 4.0, phases: int = 4) -> np.ndarray:
    """The controller's input: ``phases`` sine waves of frequency ``hz``, ``(steps, phases)``."""
    t = np.arange(steps) * ROBOT_DT
    shifts = np.linspace(0.0, 2 * np.pi, phases, endpoint=False)
    return np.sin(2 * np.pi * hz * t[:, None] + shifts)


def robot_distance(net, world: World, clock: np.ndarray, record="position"):
    """How far the robot's centre moves right, driven by ``net`` (actuation ``0.25 tanh(net
    (clock))`` on the muscles: rest lengths change by up to 25%); and its trajectory."""
    muscles = robot_muscles(world)

    def controller(state, x):
        return {"actuation": 0.25 * muscles * dnp.tanh(net(x))}

    rest = State(ROBOT_X0, np.zeros_like(ROBOT_X0))
    end, xs = simulate(world, rest, clock, controller=controller, record=record)
    return dnp.mean(end.position[:, 0]) - np.mean(ROBOT_X0[:, 0]), xs


def learn_robot(steps: int, iterations: int, seed: int):
    """Adam on a linear controller (clock -> muscle actuations) to move the robot right."""
    world, clock = robot_world(), robot_clock(steps)
    net = nn.Linear(clock.shape[1], len(world.springs), key=seed)
    net = net.replace(weight=0.1 * net.weight, bias=np.zeros_like(net.bias))
    opt = optim.adam(0.01)
    state = opt.init(net)
    value_and_grad = ds.value_and_grad(lambda m: -robot_distance(m, world, clock, None)[0])
    first = net
    history = []
    best = (-np.inf, net)
    for _ in range(iterations):
        value, g = value_and_grad(net)
        history.append(-float(value))
        best = max(best, (-float(value), net), key=lambda b: b[0])
        updates, state = opt.update(g, state, net)
        net = optim.apply_updates(net, updates)
    hard = robot_world("hard")
    before = float(robot_distance(first, hard, clock, None)[0])
    net = best[1]
    after, xs = robot_distance(net, hard, clock)
    return net, history, before, float(after), np.asarray(xs)


def main(args: argparse.Namespace) -> int:
    out = report_folder("physics", args)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    quick = bool(args.quick)
    t0 = time.perf_counter()
    summary: dict = {"quick": quick, "seed": args.seed}

    # 1. billiards
    starts, iterations, steps = (4, 15, 350) if quick else (20, 40, 450)
    print(f"[1/4] billiards: {starts} random starts learned together, {iterations} Adam steps")
    cues, targets = random_starts(rng, starts)
    velocities, history, miss = learn_shots(cues, targets, steps, iterations, rng)
    success = miss < 2 * RADIUS
    shots = [
        {"cue": cues[k].tolist(), "target": targets[k].tolist(),
         "velocity": velocities[k].tolist(), "loss": history[:, k].tolist(),
         "hard_miss": float(miss[k]), "success": bool(success[k])}
        for k in range(starts)
    ]
    first = np.sqrt(history[0])
    print(f"      distance to pocket (median): {np.median(first):.3f} before, "
          f"{np.median(np.sqrt(history[-1])):.3f} after (hard contact: {np.median(miss):.3f})")
    print(f"      success: {int(success.sum())}/{starts} shots end within {2 * RADIUS:g} of the "
          "pocket, judged with hard contact")
    summary["billiards"] = {
        "starts": starts, "successes": int(success.sum()),
        "success_rate": float(success.mean()), "shots": shots,
    }

    # 2. soft robot locomotion
    robot_steps, robot_iterations = (200, 6) if quick else (500, 25)
    print(f"[2/4] soft robot: a linear controller drives 12 muscles, {robot_iterations} Adam steps")
    net, robot_history, before, after, robot_xs = learn_robot(
        robot_steps, robot_iterations, args.seed
    )
    seconds = robot_steps * ROBOT_DT
    print(f"      distance travelled in {seconds:g} s (hard contact): {before:.3f} before, "
          f"{after:.3f} after")
    summary["robot"] = {
        "steps": robot_steps, "seconds": seconds, "history": robot_history,
        "distance_before": before, "distance_after": after,
    }

    # 3. system identification
    sysid_steps = 200 if quick else 300
    print(f"[3/4] system identification from a noisy {sysid_steps}-step trajectory")
    found, path, observed, fit, initial, result = identify(
        sysid_steps, 1e-3, np.random.default_rng([args.seed, 3])
    )
    errors = {k: abs(found[k] - TRUE[k]) / TRUE[k] for k in TRUE}
    for k in TRUE:
        print(f"      {k}: true {TRUE[k]:g}, found {found[k]:.4g} ({100 * errors[k]:.2f}% off)")
    summary["system_identification"] = {
        "true": TRUE, "found": found, "relative_error": errors, "iterations": result.nit,
        "within_2_percent": all(e < 0.02 for e in errors.values()),
    }

    # 4. gradient health and contact mismatch
    print("[4/4] gradient health and smooth/hard contact mismatch (shot 0)")
    s0 = State(np.stack([cues[0], targets[0]]), np.stack([velocities[0], [0.0, 0.0]]))
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

    if not args.no_plots:
        _, hard_xs = simulate(billiards_world(contact="hard"), s0, steps=steps)
        _plots(out, shots, np.asarray(hard_xs), observed, fit, initial, path, health)
        _robot_plots(out, robot_history, robot_xs)
        _gif(os.path.join(out, "billiards.gif"), np.asarray(hard_xs), every=15)
    summary["seconds"] = time.perf_counter() - t0
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=float)
    print(f"report: {out} ({summary['seconds']:.1f} s)")
    learned = np.median(history[-1]) < np.median(history[0]) and after > before
    learned = learned and max(errors.values()) < 0.05
    return 0 if learned else 1


def _plots(out, shots, xs, observed, fit, initial, path, health) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    ax.add_patch(_rect(fig))
    ax.plot(xs[:, 0, 0], xs[:, 0, 1], label="cue ball")
    ax.plot(xs[:, 1, 0], xs[:, 1, 1], label="target ball")
    ax.plot(*POCKET, "k*", markersize=12, label="pocket")
    ax.set_xlim(0, TABLE[0]); ax.set_ylim(0, TABLE[1]); ax.set_aspect("equal")  # noqa: E702
    ax.set_title("learned shot 0, hard contact")
    ax.legend(fontsize=7)
    for s in shots:
        bx.semilogy(np.sqrt(s["loss"]), color="tab:green" if s["success"] else "tab:red", lw=0.8)
    bx.axhline(2 * RADIUS, color="k", ls=":", lw=0.8)
    bx.set_xlabel("Adam step"); bx.set_ylabel("distance to pocket")  # noqa: E702
    bx.set_title("every start (green: success with hard contact)")
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


def _robot_plots(out, history, xs) -> None:
    from matplotlib.figure import Figure

    springs = robot_world().springs
    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    frames = np.linspace(0, len(xs) - 1, 6).astype(int)
    for k, t in enumerate(frames):
        shade = 0.25 + 0.75 * k / (len(frames) - 1)
        for i, j in springs:
            ax.plot(xs[t, [i, j], 0], xs[t, [i, j], 1], color=(0.1, 0.3, 0.8, shade), lw=0.8)
    ax.axhline(0.0, color="k", lw=1)
    ax.set_aspect("equal")
    ax.set_title("learned gait, hard contact (light to dark: time)")
    bx.plot(history)
    bx.set_xlabel("Adam step"); bx.set_ylabel("distance travelled (smooth contact)")  # noqa: E702
    fig.tight_layout()
    fig.savefig(os.path.join(out, "robot.png"), dpi=100)


def _gif(path: str, xs: np.ndarray, every: int) -> None:
    """An animated GIF of a billiards trajectory ``(steps, 2, 2)``: matplotlib frames (Figure
    API, Agg canvas) assembled by Pillow."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle
    from PIL import Image

    fig = Figure(figsize=(4, 2.2))
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    ax.add_patch(_rect(fig))
    ax.plot(*POCKET, "k*", markersize=10)
    ax.set_xlim(-0.05, TABLE[0] + 0.05); ax.set_ylim(-0.05, TABLE[1] + 0.05)  # noqa: E702
    ax.set_aspect("equal"); ax.axis("off")  # noqa: E702
    balls = [Circle(xs[0, i], RADIUS, color=c) for i, c in enumerate(("white", "tab:red"))]
    for b in balls:
        b.set_edgecolor("k")
        ax.add_patch(b)
    frames = []
    for t in range(0, len(xs), every):
        for i, b in enumerate(balls):
            b.center = tuple(xs[t, i])
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=60, loop=0)


def _rect(fig):
    from matplotlib.patches import Rectangle

    return Rectangle((0, 0), *TABLE, facecolor="#d8f0d8", edgecolor="k")
