"""``diffsys.optim``: optimizers as data (Optax-style), schedules, clipping, ``minimize``.

The explicit training step::

    import diffsys as ds
    from diffsys import optim

    opt = optim.adam(1e-3)
    opt_state = opt.init(params)
    loss, grads = ds.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optim.apply_updates(params, updates)
"""

from .base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    global_norm,
    identity,
    tree_zeros_like,
)
from .bilevel import Hypergradient, unrolled_hypergradient
from .minimize import MinimizeResult, minimize
from .optimizers import adagrad, adam, adamw, decay_mask_ndim, lamb, lion, rmsprop, sgd
from .schedules import (
    Schedule,
    constant,
    cosine_decay,
    exponential_decay,
    join_schedules,
    linear,
    linear_warmup,
    piecewise_constant,
    warmup_cosine_decay,
)
from .transforms import (
    AdamState,
    CountState,
    TraceState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    scale,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_schedule,
    scale_by_trust_ratio,
    set_to_zero,
    trace,
)
from .wrappers import (
    ApplyIfFiniteState,
    InjectHyperparamsState,
    MaskedState,
    MultiSteps,
    MultiStepsState,
    MultiTransformState,
    apply_if_finite,
    inject_hyperparams,
    masked,
    multi_transform,
)

__all__ = [n for n in dir() if not n.startswith("_")]
