"""Contact laws: a smooth penalty and smoothed Coulomb friction, each a relaxation.

Every contact law here is a :class:`diffsys.relax.Relaxation` whose strength is called
``smoothing``: calling it gives the smooth law used in training, ``.hard(...)`` its limit
used for evaluation, ``.gap(...)`` the largest difference between them.

======================  ============================  ========================================
law                     smooth (``w`` = smoothing)    hard limit
======================  ============================  ========================================
``contact_penalty``     ``k soft_relu(p, w)``         ``k max(p, 0)`` (gap <= ``k w log 2``)
``friction_direction``  ``v / sqrt(|v|^2 + w^2)``     ``v / |v|`` (0 at ``v = 0``)
======================  ============================  ========================================

``p`` is a penetration depth (positive inside), ``k`` a contact stiffness, ``v`` a tangential
velocity (last axis: its components); ``soft_relu(p, w) = w softplus(p / w)`` is
:func:`diffsys.relax.soft_relu`. The smooth penalty is positive a little before touching
(``k w log 2`` at ``p = 0``) and so gives gradients before contact happens; its hard limit is
the classical penalty spring. Whether a contact is active (for contact damping) is
``relax.soft_step(p, temperature=w)``, hard form ``p > 0``.
"""

from __future__ import annotations

from typing import Any

from ... import numpy as dnp
from ...relax import relaxation, soft_relu

Array = Any

__all__ = ["contact_penalty", "friction_direction"]


def _hard_penalty(penetration: Array, stiffness: Array = 1.0) -> Array:
    return stiffness * soft_relu.hard(penetration)


@relaxation(hard=_hard_penalty, strength="smoothing")
def contact_penalty(penetration: Array, stiffness: Array = 1.0, smoothing: Array = 1e-3) -> Array:
    """The normal contact force for a penetration depth: ``k w softplus(p / w)``, that is
    ``k * relax.soft_relu(p, temperature=w)``.

    >>> import numpy as np
    >>> from diffsys.systems.physics import contact_penalty
    >>> p = np.array([-0.1, 0.0, 0.1])
    >>> contact_penalty(p, 100.0, smoothing=1e-4).round(3).tolist()
    [0.0, 0.007, 10.0]
    >>> contact_penalty.hard(p, 100.0).tolist()
    [0.0, 0.0, 10.0]
    """
    return stiffness * soft_relu(penetration, temperature=smoothing)


def _hard_direction(tangential_velocity: Array) -> Array:
    # the square root only of positive speeds: its slope at 0 is infinite, and 0 * inf would
    # make the gradient NaN even where the result is the constant 0
    speed2 = dnp.sum(tangential_velocity * tangential_velocity, axis=-1, keepdims=True)
    moving = speed2 > 0
    return dnp.where(moving, tangential_velocity / dnp.sqrt(dnp.where(moving, speed2, 1.0)), 0.0)


@relaxation(hard=_hard_direction, strength="smoothing")
def friction_direction(tangential_velocity: Array, smoothing: Array = 1e-2) -> Array:
    """The direction of sliding, smoothed: ``v / sqrt(|v|^2 + w^2)`` over the last axis.

    Coulomb friction is ``-mu * normal_force * friction_direction(v_t)``: the smooth law is
    viscous below the speed ``w`` and Coulomb above it; the hard law is Coulomb's ``v / |v|``.

    >>> import numpy as np
    >>> from diffsys.systems.physics import friction_direction
    >>> v = np.array([[3.0, 4.0], [0.0, 0.0]])
    >>> friction_direction(v, smoothing=1e-6).round(6), friction_direction.hard(v)
    (array([[0.6, 0.8],
           [0. , 0. ]]), array([[0.6, 0.8],
           [0. , 0. ]]))
    """
    speed2 = dnp.sum(tangential_velocity * tangential_velocity, axis=-1, keepdims=True)
    return tangential_velocity / dnp.sqrt(speed2 + smoothing * smoothing)
