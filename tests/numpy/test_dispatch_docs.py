"""The code samples of docs/numpy-dispatch.md run as written (in order, sharing one
namespace), and each alone, with warnings as errors as CI runs them."""

from __future__ import annotations

import warnings

import pytest

from doc_samples import Guide

GUIDE = Guide("numpy-dispatch.md", min_blocks=4)


def test_the_guide_runs_in_order(capsys):
    GUIDE.run()
    out = capsys.readouterr().out
    assert "cannot become a plain numpy.ndarray" in out
    assert "numpy.add(..., out=...)" in out
    assert "diffsys.scipy.special" in out and "np.vectorize" in out


@pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
def test_block_runs_alone(index):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GUIDE.run_block(index)
