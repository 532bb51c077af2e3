"""``Sequential``: layers applied in order, threading random keys and state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .module import Lambda, Module, State

__all__ = ["Sequential"]


def is_stateful(layer) -> bool:
    """Whether ``layer`` is called as ``y, state = layer(x, state)``."""
    return bool(getattr(layer, "stateful", False))


class Sequential(Module):
    """Apply ``layers`` in order. Bare functions (``nn.relu``) are wrapped in :class:`Lambda`.

    Every layer gets ``key=`` (the same Generator, advanced as each layer draws from it).
    Stateful layers (BatchNorm) get the state: call ``y, state = seq(x, state)``.

    >>> import numpy as np
    >>> from diffsys import nn
    >>> net = nn.Sequential([nn.Linear(4, 8, key=0), nn.relu, nn.Linear(8, 2, key=1)])
    >>> net(np.ones((3, 4))).shape
    (3, 2)
    >>> [name for name, _ in net.named_parameters()]
    ['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias']
    """

    layers: list

    def __init__(self, layers: Iterable[Module | Callable]) -> None:
        out = []
        for i, layer in enumerate(layers):
            if isinstance(layer, Module):
                out.append(layer)
            elif callable(layer):
                out.append(Lambda(layer))
            else:
                raise TypeError(
                    f"Sequential: layer {i} is a {type(layer).__name__}, not a module or a function"
                )
        self.layers = out

    @property
    def stateful(self) -> bool:
        return any(is_stateful(layer) for layer in self.layers)

    def __call__(self, x, state: State | None = None, *, key=None):
        if state is None and self.stateful:
            names = [type(layer).__name__ for layer in self.layers if is_stateful(layer)]
            raise TypeError(
                f"Sequential: it holds stateful layers ({', '.join(names)}); make the state "
                "with `model, state = nn.with_state(model)` and call `y, state = model(x, state)`"
            )
        for layer in self.layers:
            if is_stateful(layer):
                x, state = layer(x, state, key=key)
            else:
                x = layer(x, key=key)
        return x if state is None else (x, state)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(self.layers[i])
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator:
        return iter(self.layers)
