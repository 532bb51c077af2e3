"""Per-stage optimizers and learning rates: :func:`optim.multi_transform` with the stage
names as labels.

A pipeline's parameters (and so its gradients and updates) are a dict by stage name, so a
stage's name labels all of its leaves; the stages not named share ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..optim.base import GradientTransformation, identity
from ..optim.transforms import scale
from ..optim.wrappers import multi_transform

__all__ = ["REST", "per_stage", "scale_stages"]

REST = "*"  # the label of the stages not named


def per_stage(
    transforms: Mapping[str, GradientTransformation],
    default: GradientTransformation | None = None,
) -> GradientTransformation:
    """A transformation per stage, by name; the other stages get ``default`` (unchanged
    updates when it is None). Frozen stages have no parameters in the optimizer, so naming
    one is harmless.

    >>> import numpy as np
    >>> from diffsys import optim, pipeline as pl
    >>> opt = pl.per_stage({"encoder": optim.adam(1e-3)}, default=optim.sgd(0.1))
    >>> g = {"encoder": np.ones(1), "head": np.ones(1)}
    >>> opt.update(g, opt.init(g))[0]["head"]
    array([-0.1])
    """
    transforms = dict(transforms)
    if REST in transforms:
        raise ValueError(f"per_stage: {REST!r} is the label of the other stages: use default=")
    transforms[REST] = identity() if default is None else default
    named = frozenset(transforms)

    def labels(params):
        if not isinstance(params, Mapping):
            raise TypeError(
                f"per_stage: the parameters are a {type(params).__name__}, not a dict by stage "
                "name (use it as a pipeline's optimizer, e.g. in pl.Trainer)"
            )
        return {name: name if name in named else REST for name in params}

    return multi_transform(transforms, labels)


def scale_stages(factors: Mapping[str, float]) -> GradientTransformation:
    """Multiply the updates of the named stages by their factor: placed after an optimizer
    whose last step is the learning rate (``adam``, ``sgd``, ...), a per-stage learning-rate
    multiplier. ``pl.Trainer(pipe, opt, stage_lr_scale=factors)`` builds this chain.

    >>> import numpy as np
    >>> from diffsys import optim, pipeline as pl
    >>> opt = optim.chain(optim.sgd(0.1), pl.scale_stages({"blur": 5.0}))
    >>> g = {"blur": np.ones(1), "head": np.ones(1)}
    >>> u, _ = opt.update(g, opt.init(g))
    >>> u["blur"], u["head"]
    (array([-0.5]), array([-0.1]))
    """
    for name, f in factors.items():
        if not isinstance(f, int | float) or isinstance(f, bool):
            raise TypeError(f"scale_stages: the factor of stage {name!r} is {f!r}, not a number")
    return per_stage({name: scale(f) for name, f in factors.items()})
