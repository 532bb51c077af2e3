"""systems.compress, exact layer: range coding with constriction is lossless (escapes
included), costs what the tables say, and fails clearly; patches and JPEG."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("diffsys.systems.compress")
from diffsys.systems.compress import (  # noqa: E402
    CodingTables,
    FactorizedPrior,
    decode_symbols,
    encode_symbols,
    from_patches,
    jpeg_curve,
    jpeg_roundtrip,
    pack,
    psnr,
    to_patches,
    unpack,
)


def random_tables(rng, channels):
    pmfs = []
    for _ in range(channels):
        k = int(rng.integers(1, 12))
        p = rng.dirichlet(np.ones(k)) * (1 - 1e-3)
        pmfs.append(np.append(p, 1e-3))
    return CodingTables(rng.normal(size=channels), rng.integers(-6, 3, channels), tuple(pmfs))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(0, 60))
def test_decode_of_encode_is_exact_escapes_included(seed, channels, n):
    rng = np.random.default_rng(seed)
    tables = random_tables(rng, channels)
    symbols = rng.integers(-12, 12, size=(n, channels))
    if n:  # far escapes on both sides, up to the int32 range
        symbols[0, 0] = rng.choice([2**31 - 1, -(2**31) + 1, 70000, -3])
    words = encode_symbols(symbols, tables)
    assert words.dtype == np.uint32
    np.testing.assert_array_equal(decode_symbols(words, tables, n), symbols)
    w2, shape = unpack(pack(words, symbols.shape))
    np.testing.assert_array_equal(w2, words)
    assert shape == symbols.shape


def test_actual_bits_match_the_ideal_code_length(rng):
    """An i.i.d. source coded with its own tables costs -sum log2 p within 0.5% + 64 bits:
    constriction keeps probabilities in 24-bit fixed point (a relative loss far below 0.5%
    when no probability is near 2^-24) and the range coder ends with at most two words."""
    tables = random_tables(rng, 3)
    n = 20000
    cols = []
    for p in tables.pmfs:
        q = p / p.sum()
        cols.append(rng.choice(len(q), size=n, p=q))
    idx = np.stack(cols, axis=1)
    symbols = idx + tables.offsets  # escapes become one value past the support
    ideal = tables.ideal_bits(symbols)
    escapes = sum(int(np.sum(idx[:, c] == len(p) - 1)) for c, p in enumerate(tables.pmfs))
    payload = escapes * (1 + np.log2(34))  # side and bit length of a distance 0 escape
    actual = 32 * len(encode_symbols(symbols, tables))
    assert ideal + payload - 1 <= actual <= 1.005 * (ideal + payload) + 64, (actual, ideal)


def test_prior_tables_cover_the_tail_mass_and_code_exactly(rng):
    prior = FactorizedPrior(4, key=3)
    tables = prior.tables()
    for c, p in enumerate(tables.pmfs):
        assert np.isclose(p.sum(), 1.0, atol=1e-9)
        assert p[-1] <= prior.tail_mass * 1.01  # the escape holds at most the tail mass
        lo, hi = tables.support(c)
        assert lo < 0 < hi
    y = rng.normal(size=(300, 4)) * 8
    data = prior.compress(y)
    expect = np.rint(y - tables.medians) + tables.medians
    np.testing.assert_array_equal(prior.decompress(data), expect)


def test_coding_errors_are_clear():
    tables = CodingTables(np.zeros(2), np.array([-1, 0]), (np.full(4, 0.25), np.full(3, 0.3)))
    with pytest.raises(ValueError, match=r"shape \(N, 2\).*got shape \(5,\)"):
        encode_symbols(np.zeros(5, dtype=int), tables)
    with pytest.raises(TypeError, match="must be integers.*float64.*np.rint"):
        encode_symbols(np.zeros((5, 2)), tables)
    bad = np.array([[0, 0], [0, 5]])
    with pytest.raises(ValueError, match=r"channel 1 has symbol 5 outside its support \[0, 1\]"):
        encode_symbols(bad, tables, escape=False)
    with pytest.raises(ValueError, match="int32 range"):
        encode_symbols(np.array([[2**40, 0]]), tables)
    with pytest.raises(TypeError, match="1-D uint32 array"):
        decode_symbols(np.zeros(3, dtype=np.int64), tables, 1)
    with pytest.raises(ValueError, match="not a diffsys compressed stream"):
        unpack(b"\xff\xd8JPEG")
    with pytest.raises(ValueError, match="truncated"):
        unpack(pack(np.arange(3, dtype=np.uint32), (2, 2))[:9])
    with pytest.raises(ValueError, match=r"pmfs\[0\] must be a 1-D array"):
        CodingTables(np.zeros(1), np.zeros(1, int), (np.array([1.0]),))
    prior = FactorizedPrior(3, key=0)
    with pytest.raises(ValueError, match=r"latents of shape \(4, 2\), this prior codes \(N, 3\)"):
        prior.decompress(FactorizedPrior(2, key=0).compress(np.zeros((4, 2))))


def test_patches_roundtrip_and_errors(rng):
    img = rng.uniform(size=(16, 24))
    p = to_patches(img, 8)
    assert p.shape == (6, 64)
    np.testing.assert_array_equal(p[1].reshape(8, 8), img[:8, 8:16])
    np.testing.assert_array_equal(from_patches(p, img.shape, 8), img)
    with pytest.raises(ValueError, match=r"not a multiple of the patch size 8; crop it"):
        to_patches(rng.uniform(size=(10, 16)), 8)
    with pytest.raises(ValueError, match="rgb2gray"):
        to_patches(rng.uniform(size=(16, 16, 3)), 8)


def test_jpeg_baseline():
    import skimage.data

    img = skimage.data.camera()[:128, :128]
    nbytes, dec = jpeg_roundtrip(img, 50)
    assert dec.shape == img.shape and dec.dtype == np.uint8 and 0 < nbytes < img.size
    bpp, db = jpeg_curve(img, qualities=(10, 50, 90))
    assert np.all(np.diff(bpp) > 0) and np.all(np.diff(db) > 0)
    assert np.isclose(db[1], psnr(img, dec, 255.0))
    with pytest.raises(TypeError, match="must be uint8"):
        jpeg_roundtrip(img.astype(float), 50)


def test_import_without_constriction_names_the_extra():
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "import sys; sys.modules['constriction'] = None\n"
        "try:\n    import diffsys.systems.compress\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"PYTHONPATH": str(src)}, check=True,
    ).stdout
    assert "'compress' extra" in out and "diffsys[compress]" in out
