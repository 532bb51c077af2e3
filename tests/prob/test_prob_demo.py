"""``diffsys demo vi --quick`` runs, writes its report, and its VAE learns; the VAE's pieces."""

from __future__ import annotations

import json

import numpy as np

from diffsys import cli, optim, prob
from diffsys.cli.demos.vi import discrete_elbo, vae


def test_demo_vi_quick_writes_a_report(tmp_path):
    out = tmp_path / "vi"
    cli.main(["demo", "vi", "--quick", "--out", str(out), "--no-plots"])
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"conjugate", "logistic_regression", "vae"}
    v = summary["vae"]
    assert v["test_elbo"]["after"] > v["test_elbo"]["before"] + 5.0


def test_vae_relaxed_latents_train_on_digits():
    from sklearn.datasets import load_digits

    x = (load_digits().data[:256] > 8).astype(np.float64)
    model, guide = vae(n_latent=2, k=5, hidden=32, seed=0)
    svi = prob.SVI(model, guide, optim.adam(1e-2), prob.Trace_ELBO(analytic_kl=True))
    state = svi.init(0, x[:64])
    before = discrete_elbo(svi.get_params(state), x, 2, 5, np.random.default_rng(0))
    for i in range(30):
        state, _ = svi.update(state, x[(i % 4) * 64 : (i % 4 + 1) * 64])
    after = discrete_elbo(svi.get_params(state), x, 2, 5, np.random.default_rng(0))
    tr = prob.trace(prob.seed(guide, rng=0)).get_trace(x[:3])
    z = tr["z"]["value"]
    assert z.shape == (3, 2, 5) and np.all(z.sum(-1) == 1.0) and np.all((z == 0) | (z == 1))
    assert after > before + 5.0, (before, after)
