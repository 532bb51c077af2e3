"""Mini-batches over arrays, shuffled reproducibly from an explicit seed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

__all__ = ["endless_batches", "epoch_permutation", "iterate_batches", "num_batches"]


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a function of ``(seed, epoch)`` only, so a run resumed
    at any epoch sees exactly the batches an uninterrupted one would."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def endless_batches(n: int, batch_size: int, *, seed: int) -> Iterator[np.ndarray]:
    """Index arrays of ``batch_size`` samples out of ``n``, epoch after epoch without end:
    each epoch in the order :func:`epoch_permutation` gives, its incomplete last batch
    dropped. For loops that count steps, not epochs.

    >>> batches = endless_batches(5, 2, seed=0)
    >>> [len(next(batches)) for _ in range(5)]   # two batches per epoch of 5, forever
    [2, 2, 2, 2, 2]
    >>> bool((next(endless_batches(5, 2, seed=0)) == epoch_permutation(5, 0, 0)[:2]).all())
    True
    """
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"endless_batches: batch_size must be in 1..{n}, got {batch_size}")
    epoch = 0
    while True:
        order = epoch_permutation(n, seed, epoch)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
        epoch += 1


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(
    arrays: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    batch_size: int,
    *,
    seed: int | None = None,
    epoch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield tuples of aligned mini-batches of ``arrays`` (shuffled when ``seed`` is given).

    >>> import numpy as np
    >>> x, y = np.arange(10), np.arange(10) * 2
    >>> [b[0].tolist() for b in iterate_batches((x, y), 4)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    A dict of arrays gives dicts of mini-batches with the same keys:

    >>> [b["y"].tolist() for b in iterate_batches({"x": x, "y": y}, 5)]
    [[0, 2, 4, 6, 8], [10, 12, 14, 16, 18]]
    """
    if isinstance(arrays, Mapping):
        keys = list(arrays)
        for batch in iterate_batches(
            [arrays[k] for k in keys], batch_size, seed=seed, epoch=epoch, drop_last=drop_last
        ):
            yield dict(zip(keys, batch, strict=True))
        return
    arrays = tuple(np.asarray(a) for a in arrays)
    if not arrays:
        raise ValueError("iterate_batches: give at least one array")
    n = len(arrays[0])
    for i, a in enumerate(arrays):
        if len(a) != n:
            raise ValueError(f"iterate_batches: array {i} has {len(a)} samples, array 0 has {n}")
    if batch_size < 1:
        raise ValueError(f"iterate_batches: batch_size must be positive, got {batch_size}")
    order = None if seed is None else epoch_permutation(n, seed, epoch)
    stop = (n // batch_size) * batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            idx = slice(start, start + batch_size)
        else:
            idx = order[start : start + batch_size]
        yield tuple(a[idx] for a in arrays)
