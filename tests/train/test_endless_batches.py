"""train.endless_batches: step-counted mini-batches, epoch after epoch."""

from __future__ import annotations

import numpy as np
import pytest

from diffsys.train import endless_batches, epoch_permutation


def test_each_epoch_is_the_seeded_permutation_without_its_tail():
    batches = endless_batches(7, 3, seed=4)
    got = [next(batches) for _ in range(6)]  # two full batches per epoch, three epochs
    for epoch in range(3):
        order = epoch_permutation(7, 4, epoch)
        np.testing.assert_array_equal(np.concatenate(got[2 * epoch : 2 * epoch + 2]), order[:6])
    assert all(len(b) == 3 for b in got)
    assert not np.array_equal(got[0], got[2])  # a new order each epoch


def test_bad_batch_sizes_are_named():
    with pytest.raises(ValueError, match=r"endless_batches: batch_size must be in 1..5"):
        next(endless_batches(5, 6, seed=0))
    with pytest.raises(ValueError, match="batch_size must be in"):
        next(endless_batches(5, 0, seed=0))
