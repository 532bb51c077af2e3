"""The code samples of docs/numpy-dispatch.md run as written (in order, sharing one
namespace), and each alone, with warnings as errors as CI runs them; the samples that show
an error print the message the guide promises."""

from __future__ import annotations

import warnings

import pytest

from doc_samples import Guide

GUIDE = Guide("numpy-dispatch.md", min_blocks=4)

# What a block prints, in part (the error samples print diffsys's messages).
PRINTS = {
    2: ("cannot become a plain numpy.ndarray", "numpy.add(..., out=...)", "stop_gradient"),
    3: ("the ufunc erf", "diffsys.scipy.special has differentiable", "np.vectorize"),
}


def test_the_guide_runs_in_order():
    GUIDE.run()


@pytest.mark.parametrize("index", range(len(GUIDE.blocks)))
def test_block_runs_alone(index, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GUIDE.run_block(index)
    out = capsys.readouterr().out
    for text in PRINTS.get(index, ()):
        assert text in out, (text, out)
