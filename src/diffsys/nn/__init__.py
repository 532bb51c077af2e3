"""``diffsys.nn``: models as pytrees that own their parameters, layers, initializers, losses.

>>> import numpy as np, diffsys as ds
>>> from diffsys import nn
>>> model = nn.Sequential([nn.Linear(4, 16, key=0), nn.tanh, nn.Linear(16, 3, key=1)])
>>> x, y = np.ones((8, 4)), np.zeros(8, dtype=int)
>>> loss, grads = ds.value_and_grad(lambda m: nn.cross_entropy(m(x), y))(model)
>>> grads.layers[0].weight.shape
(16, 4)
"""

from . import init
from ._conv_op import conv, conv_transpose
from ._linear_op import linear
from ._pool_op import adaptive_avg_pool, avg_pool, max_pool
from ._tree import combine, is_array, is_inexact_array, named_leaves, partition
from .activation_layers import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .activations import (
    celu,
    elu,
    erf,
    gelu,
    hard_tanh,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    logsumexp,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    swish,
    tanh,
)
from .attention import MultiHeadAttention, dot_product_attention
from .convolution import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d
from .dense import Embedding, Flatten, Identity, Linear
from .dropout_layer import Dropout, dropout
from .losses import (
    bce_with_logits,
    binary_cross_entropy_with_logits,
    cosine_embedding,
    cross_entropy,
    huber,
    kl_div,
    l1,
    mse,
    nll,
    smooth_l1,
)
from .module import (
    Lambda,
    Module,
    State,
    eval_mode,
    field,
    field_names,
    module_fields,
    module_from_fields,
    static,
    train_mode,
    with_state,
)
from .normalization import BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from .sequential import Sequential


def astype(tree, dtype):
    """A copy of ``tree`` (a model, parameters, ...) with every floating-point array leaf
    cast to ``dtype``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> nn.astype(nn.Linear(2, 2, key=0), np.float32).weight.dtype
    dtype('float32')
    """
    import numpy as _np

    from ..core.pytree import tree_map

    def cast(x):
        if isinstance(x, _np.ndarray | _np.generic) and _np.issubdtype(x.dtype, _np.floating):
            return _np.asarray(x, dtype=dtype)
        return x

    return tree_map(cast, tree)


__all__ = [n for n in dir() if not n.startswith("_")]
