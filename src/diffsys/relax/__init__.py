"""Relaxations and gradient estimators for discrete operations (``diffsys.relax``).

- Sorting and ranking (Blondel et al. 2020): :func:`soft_sort`, :func:`soft_rank`,
  :func:`soft_topk`, :func:`soft_topk_mask` (relaxations with exact ``.hard`` forms),
  :func:`permutahedron_projection`, and the isotonic regressions they are built on;
  NeuralSort (:func:`neural_sort`) and Sinkhorn sorting (:func:`sinkhorn_sort`,
  :func:`sinkhorn_rank`) as alternatives.
- Temperature relaxations with hard forms (:class:`Relaxation`): :func:`softmax`,
  :func:`soft_argmax`, :func:`soft_max`, :func:`soft_step`, :func:`soft_gate`,
  :func:`soft_clip`, ...
- Straight-through estimators: :func:`straight_through`, :func:`ste_round`, :func:`quantize`,
  :func:`ste_argmax_onehot`, :func:`lower_bound`, ...
- Sampling: :func:`gumbel_softmax`, :func:`relaxed_bernoulli`, :func:`normal_rsample`, and
  score-function gradients (:func:`score_function`) with baselines and
  :func:`gradient_variance`.
- Differentiable dynamic programming (Mensch & Blondel 2018): :func:`smoothed_max`,
  :func:`smoothed_min` (entropy or l2), :func:`soft_dtw`, :func:`soft_edit_distance`,
  :func:`soft_viterbi`, :func:`soft_shortest_path`, :func:`soft_bellman_ford`
  (docs/dp.md).
- Soft quantization: :func:`noisy_quantize`, :func:`soft_round`, :func:`quantization_gap`.

See docs/relax.md for the guide.
"""

from ._ops import log_sigmoid, log_softmax, logsumexp, sigmoid, softplus
from .dp import (
    smoothed_max,
    smoothed_min,
    soft_bellman_ford,
    soft_dtw,
    soft_dtw_cost,
    soft_edit_distance,
    soft_shortest_path,
    soft_viterbi,
)
from .isotonic import isotonic_kl, isotonic_l2, isotonic_regression
from .neuralsort import neural_sort, neural_sort_values, neuralsort_reference
from .quantization import QuantizationGap, noisy_quantize, quantization_gap, soft_round
from .sampling import (
    as_generator,
    gumbel_noise,
    gumbel_softmax,
    logistic_noise,
    normal_rsample,
    relaxed_bernoulli,
)
from .score_function import (
    Bernoulli,
    Categorical,
    GradientVariance,
    MovingAverageBaseline,
    Normal,
    baseline_values,
    gradient_variance,
    score_function,
)
from .sinkhorn import sinkhorn_plan, sinkhorn_rank, sinkhorn_sort
from .smooth import (
    Relaxation,
    relaxation,
    soft_abs,
    soft_argmax,
    soft_argmin,
    soft_clip,
    soft_gate,
    soft_max,
    soft_min,
    soft_relu,
    soft_sign,
    soft_step,
    softmax,
)
from .sorting import permutahedron_projection
from .sorting_relaxations import soft_rank, soft_sort, soft_topk, soft_topk_mask
from .straight_through import (
    lower_bound,
    quantize,
    ste_argmax_onehot,
    ste_binarize,
    ste_floor,
    ste_round,
    ste_sign,
    straight_through,
)

__all__ = [
    "Bernoulli",
    "Categorical",
    "GradientVariance",
    "MovingAverageBaseline",
    "Normal",
    "QuantizationGap",
    "Relaxation",
    "as_generator",
    "baseline_values",
    "gradient_variance",
    "gumbel_noise",
    "gumbel_softmax",
    "isotonic_kl",
    "isotonic_l2",
    "isotonic_regression",
    "log_sigmoid",
    "lower_bound",
    "log_softmax",
    "logistic_noise",
    "logsumexp",
    "neural_sort",
    "neural_sort_values",
    "neuralsort_reference",
    "noisy_quantize",
    "normal_rsample",
    "permutahedron_projection",
    "quantization_gap",
    "quantize",
    "relaxation",
    "relaxed_bernoulli",
    "score_function",
    "sigmoid",
    "sinkhorn_plan",
    "sinkhorn_rank",
    "sinkhorn_sort",
    "smoothed_max",
    "smoothed_min",
    "soft_abs",
    "soft_argmax",
    "soft_argmin",
    "soft_clip",
    "soft_dtw",
    "soft_dtw_cost",
    "soft_edit_distance",
    "soft_gate",
    "soft_max",
    "soft_min",
    "soft_rank",
    "soft_round",
    "soft_bellman_ford",
    "soft_shortest_path",
    "soft_sign",
    "soft_sort",
    "soft_relu",
    "soft_step",
    "soft_topk",
    "soft_topk_mask",
    "soft_viterbi",
    "softmax",
    "softplus",
    "ste_argmax_onehot",
    "ste_binarize",
    "ste_floor",
    "ste_round",
    "ste_sign",
    "straight_through",
]


# Old names, kept working with a DeprecationWarning: {old: (new, why)}.
_DEPRECATED = {
    "soft_threshold": (
        "soft_gate",
        "x * sigmoid((x - t) / T) is a relaxed gate, not the soft thresholding "
        "sign(x) * max(|x| - t, 0) of sparse coding",
    ),
}


def __getattr__(name: str):
    if name in _DEPRECATED:
        import warnings

        new, why = _DEPRECATED[name]
        warnings.warn(
            f"diffsys.relax.{name} is deprecated: use diffsys.relax.{new} (same function; {why})",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module 'diffsys.relax' has no attribute {name!r}")
