"""The Bayesian logistic regression of tests/prob: its data and an independent NUTS reference.

``python tests/prob/logreg_reference.py`` reruns NumPyro's NUTS (optional; not a test
dependency) and rewrites ``logreg_nuts.json``; the tests read that file, and
``test_logreg_reference_recomputes_with_numpyro`` reruns a shorter chain when NumPyro is
importable.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

FIXTURE = pathlib.Path(__file__).with_name("logreg_nuts.json")
PRIOR_SCALE = 1.0


def data() -> tuple[np.ndarray, np.ndarray]:
    """100 points, an intercept column and 3 features; labels from a known logistic model."""
    rng = np.random.default_rng(20)
    n = 100
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    w_true = np.array([-0.5, 1.5, -1.0, 0.5])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-x @ w_true))).astype(np.float64)
    return x, y


def numpyro_nuts(num_warmup: int, num_samples: int, num_chains: int, seed: int = 0) -> dict:
    """Posterior mean, standard deviation and the Monte-Carlo standard error of the mean."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)
    numpyro.set_host_device_count(1)
    x, y = data()

    def model(x, y):
        w = numpyro.sample("w", nd.Normal(jnp.zeros(x.shape[1]), PRIOR_SCALE).to_event(1))
        numpyro.sample("y", nd.Bernoulli(logits=x @ w), obs=y)

    mcmc = MCMC(
        NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(x), jnp.asarray(y))
    w = np.asarray(mcmc.get_samples(group_by_chain=True)["w"])  # (chains, samples, d)
    ess = np.asarray(effective_sample_size(w))
    flat = w.reshape(-1, w.shape[-1])
    return {
        "mean": flat.mean(0).tolist(),
        "std": flat.std(0).tolist(),
        "mc_std_error": (flat.std(0) / np.sqrt(ess)).tolist(),
        "ess": ess.tolist(),
        "numpyro": numpyro.__version__,
        "settings": {"warmup": num_warmup, "samples": num_samples, "chains": num_chains},
    }


if __name__ == "__main__":
    ref = numpyro_nuts(num_warmup=2000, num_samples=10000, num_chains=4)
    FIXTURE.write_text(json.dumps(ref, indent=1) + "\n")
    print(json.dumps(ref, indent=1))
