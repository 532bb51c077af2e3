"""systems.compress, the codec: relaxed and hard forms, gradients through the relaxed codec,
a trained codec's estimated rate against the bits it really writes, the stage, the demo."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds
from diffsys import pipeline as pl

pytest.importorskip("diffsys.systems.compress")
import skimage.data  # noqa: E402

from diffsys.systems.compress import (  # noqa: E402
    ImageCodec,
    codec_stage,
    evaluate,
    rate_distortion_loss,
    to_patches,
    train_codec,
)
from diffsys.systems.compress.evaluate import random_patches  # noqa: E402


def test_relaxed_and_hard_forms(rng):
    codec = ImageCodec(patch=4, latents=3, hidden=8, quantizer="mixed", key=0)
    x = rng.uniform(size=(20, 16))
    y = np.asarray(codec.encode(x))
    med = codec.prior.medians()
    hard = codec.hard(x)
    np.testing.assert_array_equal(hard.latents, np.rint(y - med) + med)
    np.testing.assert_allclose(hard.x_hat, codec.decode(hard.latents))
    relaxed = codec.relaxed(x, key=1)
    assert np.all(np.abs(relaxed.latents - y) <= 0.5)  # the rate sees y + u
    np.testing.assert_allclose(relaxed.x_hat, hard.x_hat)  # the decoder sees rounded values
    noise = ImageCodec(patch=4, latents=3, hidden=8, quantizer="noise", key=0).relaxed(x, key=1)
    np.testing.assert_array_equal(noise.latents, relaxed.latents)
    assert not np.allclose(noise.x_hat, hard.x_hat)


def test_relaxed_codec_loss_derivatives_match_finite_differences(rng):
    """The whole relaxed codec (noise proxy, fixed draw) w.r.t. every parameter and input."""
    codec = ImageCodec(patch=2, latents=2, hidden=3, quantizer="noise", key=4)
    x = rng.uniform(size=(6, 4))
    ds.check_grads(lambda m, x: m.loss(x, 0.05, key=7)[0], (codec, x), order=1, rtol=1e-4)
    g = ds.grad(lambda m: m.loss(x, 0.05, key=7)[0])(codec)
    assert all(np.any(leaf != 0) for leaf in ds.tree_leaves(g))  # no silent zero gradient


def test_codec_errors_are_clear():
    codec = ImageCodec(patch=4, latents=3, hidden=8, key=0)
    with pytest.raises(ValueError, match=r"ImageCodec\(patch=4.*expected patches of shape "
                       r"\(N, 16\).*got \(5, 9\).*to_patches"):
        codec.encode(np.zeros((5, 9)))
    with pytest.raises(TypeError, match="floating point in \\[0, 1\\], got uint8"):
        codec.encode(np.zeros((5, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="draws uniform noise; pass key="):
        codec.relaxed(np.zeros((5, 16)))
    with pytest.raises(ValueError, match="quantizer must be 'noise', 'ste' or 'mixed'"):
        ImageCodec(quantizer="round", key=0)
    with pytest.raises(ValueError, match=r"holds an image of shape \(6, 8\)"):
        codec.decompress(ImageCodec(patch=2, latents=3, hidden=8, key=0).compress(np.zeros((6, 8))))


def test_codec_stage_is_relaxed_and_reports_mismatch(rng):
    codec = ImageCodec(patch=4, latents=3, hidden=8, quantizer="noise", key=0)
    stage = codec_stage("codec", codec)
    assert stage.kind == "relaxed"
    assert codec_stage("c", ImageCodec(4, 3, 8, quantizer="ste", key=0)).kind == "straight_through"
    pipe = pl.Pipeline([stage], batch_keys=("patches",))
    pipe.add_loss("rd", lambda out, x: rate_distortion_loss(x, out.x_hat, out.likelihoods, 0.01)[0],
                  inputs=("codec", "patches"))
    x = rng.uniform(size=(10, 16))
    with pipe.inference():
        out_hard = pipe({"patches": x})
    np.testing.assert_allclose(out_hard.x_hat, codec.hard(x).x_hat)
    report = pipe.mismatch({"patches": x}, key=0)
    row = report["codec"]
    assert 0 < row.max_abs <= 1.0  # noise vs rounding, on the latents and the reconstruction
    assert report.loss_relaxed != report.loss_hard


@pytest.fixture(scope="module")
def trained():
    gray = lambda im: (skimage.color.rgb2gray(im) * 255).round().astype(np.uint8)
    import skimage.color

    train = [gray(skimage.data.astronaut()), skimage.data.coins(), skimage.data.moon()]
    patches = random_patches(train, 4, 4000, rng=0)
    codec = ImageCodec(patch=4, latents=6, hidden=32, quantizer="mixed", key=0)
    return train_codec(codec, patches, 0.01, steps=250, batch=64, learning_rate=5e-3, seed=0)


def test_training_lowers_the_rate_distortion_loss(trained):
    assert np.mean(trained.loss[-20:]) < 0.5 * np.mean(trained.loss[:5])


def test_estimated_bits_match_actual_bits_after_training(trained):
    """On a held-out image the real range-coded stream costs the rounded-latent estimate
    within 1% plus 168 bits: 104 header bits (magic, rank, H, W), at most 64 for the coder's
    final words, and the 24-bit fixed-point probabilities of constriction (well under 1%
    while no probability is near 2^-24); escapes cost their payload on top (counted)."""
    img = skimage.data.camera()[:128, :128]
    ev = evaluate(trained.codec, img)
    assert ev.exact_roundtrip
    pixels = img.size
    est_bits, actual_bits = ev.bpp_estimated * pixels, ev.bpp_actual * pixels
    payload = ev.escapes * 64
    assert est_bits - 1 <= actual_bits <= 1.01 * est_bits + 168 + payload, ev.summary()
    # the reconstruction is the hard form, coded or not
    rec = trained.codec.decompress(trained.codec.compress(img / 255.0))
    np.testing.assert_array_equal(rec, trained.codec.reconstruct(img / 255.0))
    assert rec.shape == img.shape and ev.psnr_hard > 20


def test_noise_estimate_differs_from_what_is_coded(trained):
    """The training proxy's rate is an estimate of a different quantity (y + u, not
    round(y)); the report keeps both. Here they differ measurably."""
    img = skimage.data.camera()[:128, :128]
    ev = evaluate(trained.codec, img, noise_draws=2)
    assert ev.bpp_noise != ev.bpp_estimated
    x = to_patches(img / 255.0, 4)
    assert trained.codec.hard(x).likelihoods.shape == (len(x), 6)
