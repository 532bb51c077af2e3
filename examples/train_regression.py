"""Fit a small tanh MLP to noisy sine data with diffsys and a hand-written Adam.

Run it with::

    python examples/train_regression.py

Parameters live in a dict pytree; ``ds.value_and_grad`` gives the loss and a gradient dict
of the same shape; ``ds.tree_map`` applies the Adam update leaf by leaf. The program prints
the training loss at regular steps and exits with status 1 if the final loss is not clearly
lower than the initial one.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import diffsys as ds
import diffsys.numpy as dnp

SEED = 0
N_SAMPLES = 128
HIDDEN = 32
STEPS = 1500
LEARNING_RATE = 1e-2
PRINT_EVERY = 100


def make_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy samples of sin(x) on [-3, 3], as column vectors."""
    x = rng.uniform(-3.0, 3.0, size=(N_SAMPLES, 1))
    y = np.sin(x) + 0.1 * rng.standard_normal(size=(N_SAMPLES, 1))
    return x, y


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A 1 -> HIDDEN -> 1 network, Glorot-style scaled weights, zero biases."""
    return {
        "w1": rng.standard_normal((1, HIDDEN)) * np.sqrt(2.0 / (1 + HIDDEN)),
        "b1": np.zeros(HIDDEN),
        "w2": rng.standard_normal((HIDDEN, 1)) * np.sqrt(2.0 / (HIDDEN + 1)),
        "b2": np.zeros(1),
    }


def predict(params, x):
    hidden = dnp.tanh(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def loss_fn(params, x, y):
    """Mean squared error of the network on (x, y)."""
    return dnp.mean((predict(params, x) - y) ** 2)


def adam_init(params):
    return {"m": ds.tree_map(np.zeros_like, params), "v": ds.tree_map(np.zeros_like, params),
            "t": 0}


def adam_update(params, grads, state, lr=LEARNING_RATE, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step over whole pytrees, written with tree_map."""
    t = state["t"] + 1
    m = ds.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
    v = ds.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
    scale = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    new_params = ds.tree_map(lambda p, m, v: p - scale * m / (np.sqrt(v) + eps), params, m, v)
    return new_params, {"m": m, "v": v, "t": t}


def main() -> int:
    rng = np.random.default_rng(SEED)
    x, y = make_data(rng)
    params = init_params(rng)
    state = adam_init(params)
    loss_and_grad = ds.value_and_grad(loss_fn)  # gradient w.r.t. params (argnums=0)

    start = time.perf_counter()
    initial_loss = float(loss_fn(params, x, y))
    print(f"step {0:5d}  loss {initial_loss:.5f}")
    loss = initial_loss
    for step in range(1, STEPS + 1):
        loss, grads = loss_and_grad(params, x, y)
        params, state = adam_update(params, grads, state)
        if step % PRINT_EVERY == 0:
            print(f"step {step:5d}  loss {float(loss):.5f}")
    final_loss = float(loss_fn(params, x, y))
    elapsed = time.perf_counter() - start

    print(f"initial loss {initial_loss:.5f} -> final loss {final_loss:.5f} "
          f"({STEPS} Adam steps in {elapsed:.2f} s)")
    # The noise variance is 0.01, so a fitted model gets close to it; demand at least a
    # tenfold improvement so that a broken gradient cannot pass.
    if not (np.isfinite(final_loss) and final_loss < 0.1 * initial_loss):
        print("FAILED: the loss did not fall clearly", file=sys.stderr)
        return 1
    print("OK: the loss fell clearly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
