"""``diffsys demo compress``: learned image compression, really entropy-coded, beside JPEG.

1. Data: random 8x8 patches from scikit-image's sample photos (grey); ``camera`` is held out.
2. Training: :class:`~diffsys.systems.compress.ImageCodec` on ``bpp + lambda * 255^2 * MSE``
   for several ``lambda`` (each run starts from the previous one), the rate estimated with
   uniform noise, the decoder fed straight-through rounded latents.
3. Real coding of the held-out image with constriction's range coder: the noise estimate,
   the rounded-latent estimate and the actual bits per pixel side by side, the stream decoded
   and checked bit for bit; JPEG (Pillow) PSNR at the same rate.
4. The train/inference mismatch: a codec trained with noise only (its decoder never saw
   rounded latents) against the mixed recipe at the same lambda.
5. Encode/decode throughput.

Writes ``summary.json`` and PNGs (``rd_curve.png``, ``rates.png``, ``reconstructions.png``,
``training.png``) to the report folder.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from ._common import Report, one_blas_thread

__all__ = ["CompressConfig", "run"]

TRAIN_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "coins", "moon")


@dataclass(frozen=True)
class CompressConfig:
    seed: int = 0
    lambdas: tuple[float, ...] = (0.002, 0.006, 0.02, 0.06)
    first_steps: int = 1200
    steps: int = 400
    noise_only_steps: int = 400
    batch: int = 128
    patches: int = 30000
    latents: int = 16
    hidden: int = 96
    learning_rate: float = 3e-3
    crop: int = 512
    out: str = "diffsys-demo-compress"
    plots: bool = True


def load_images(crop: int):
    import skimage.color
    import skimage.data

    def grey(name):
        im = getattr(skimage.data, name)()
        if im.ndim == 3:
            im = (skimage.color.rgb2gray(im[..., :3]) * 255).round().astype(np.uint8)
        return im

    test = skimage.data.camera()
    h0, w0 = (test.shape[0] - crop) // 2, (test.shape[1] - crop) // 2
    return [grey(n) for n in TRAIN_IMAGES], test[h0 : h0 + crop, w0 : w0 + crop]


def run(cfg: CompressConfig, stream=None) -> dict:
    from ...systems.compress import ImageCodec, evaluate, jpeg_curve, jpeg_roundtrip, psnr
    from ...systems.compress.evaluate import random_patches, train_codec

    report = Report("compress", cfg.out, plots=cfg.plots, stream=stream)
    say = report.say
    say("diffsys demo compress: a learned transform codec, its entropy model really range-coded")
    train_imgs, test = load_images(cfg.crop)
    patches = random_patches(train_imgs, 8, cfg.patches, rng=cfg.seed)
    say(
        f"1. {len(patches)} 8x8 patches from {', '.join(TRAIN_IMAGES)} (grey); held out: "
        f"camera {test.shape[0]}x{test.shape[1]}"
    )
    say("2. training on bpp + lambda * 255^2 * MSE (noise for the rate, straight-through "
        "rounding for the decoder)")  # fmt: skip
    codec = ImageCodec(8, cfg.latents, cfg.hidden, quantizer="mixed", key=cfg.seed)
    runs = []
    for i, lmbda in enumerate(cfg.lambdas):
        steps = cfg.first_steps if i == 0 else cfg.steps
        res = train_codec(
            codec, patches, lmbda, steps=steps, batch=cfg.batch,
            learning_rate=cfg.learning_rate, seed=cfg.seed + i,
        )  # fmt: skip
        codec = res.codec
        ev = evaluate(codec, test, seed=cfg.seed)
        runs.append((lmbda, res, ev, codec))
        say(
            f"   lambda {lmbda:<6g} {steps:4d} steps  loss {np.mean(res.loss[:5]):.3f} -> "
            f"{np.mean(res.loss[-20:]):.3f}  ({res.seconds:.1f} s)"
        )
    jb, jp = jpeg_curve(test, qualities=range(2, 96, 3))
    say("3. the held-out image, really coded (constriction range coder) and decoded:")
    say("   lambda   bpp: noise est  rounded est  actual (gap)      PSNR: noisy  decoded  "
        "JPEG@bpp  exact")  # fmt: skip
    rows = []
    for lmbda, _, ev, _ in runs:
        jpeg_db = float(np.interp(ev.bpp_actual, jb, jp)) if jb[0] <= ev.bpp_actual else None
        gap = 100 * (ev.bpp_actual / ev.bpp_estimated - 1)
        rows.append(
            {
                "lambda": lmbda, "bpp_noise": ev.bpp_noise, "bpp_estimated": ev.bpp_estimated,
                "bpp_actual": ev.bpp_actual, "gap_percent": gap, "psnr_noise": ev.psnr_noise,
                "psnr_decoded": ev.psnr_hard, "psnr_jpeg_same_bpp": jpeg_db,
                "exact": ev.exact_roundtrip, "bytes": ev.nbytes, "escapes": ev.escapes,
            }
        )  # fmt: skip
        jtxt = f"{jpeg_db:6.2f}" if jpeg_db is not None else "  (below JPEG's range)"
        say(
            f"   {lmbda:<7g}  {ev.bpp_noise:10.4f}  {ev.bpp_estimated:11.4f}  {ev.bpp_actual:6.4f} "
            f"({gap:+.2f}%)  {ev.psnr_noise:10.2f}  {ev.psnr_hard:7.2f}  {jtxt}    "
            f"{ev.exact_roundtrip}"
        )
    mid = len(runs) // 2
    mismatch = None
    if cfg.noise_only_steps:
        lmbda = cfg.lambdas[mid]
        noisy = ImageCodec(8, cfg.latents, cfg.hidden, quantizer="noise", key=cfg.seed)
        mixed = ImageCodec(8, cfg.latents, cfg.hidden, quantizer="mixed", key=cfg.seed)
        out = {}
        for name, c in (("noise", noisy), ("mixed", mixed)):
            r = train_codec(
                c, patches, lmbda, steps=cfg.noise_only_steps, batch=cfg.batch,
                learning_rate=cfg.learning_rate, seed=cfg.seed + 99,
            )  # fmt: skip
            out[name] = evaluate(r.codec, test, seed=cfg.seed)
        mismatch = {
            k: {"psnr_noise": e.psnr_noise, "psnr_decoded": e.psnr_hard,
                "bpp_noise": e.bpp_noise, "bpp_actual": e.bpp_actual}
            for k, e in out.items()
        }  # fmt: skip
        say(f"4. train/inference mismatch at lambda {lmbda:g} ({cfg.noise_only_steps} steps each):")
        for k, e in out.items():
            say(
                f"   decoder trained on {k:5s}: PSNR with noisy latents {e.psnr_noise:.2f} dB, "
                f"decoded (rounded) {e.psnr_hard:.2f} dB ({e.psnr_hard - e.psnr_noise:+.2f}); "
                f"bpp noise est {e.bpp_noise:.4f} vs actual {e.bpp_actual:.4f}"
            )
    last = runs[mid]
    ev = last[2]
    mpix = test.size / 1e6
    say(
        f"5. coding throughput ({test.size} pixels, {ev.nbytes} bytes): encode "
        f"{mpix / ev.encode_seconds:.1f} Mpixel/s, decode {mpix / ev.decode_seconds:.1f} "
        f"Mpixel/s (transforms included)"
    )
    _plots(report, runs, (jb, jp), test, mid, jpeg_roundtrip, psnr)
    ok = all(r["exact"] for r in rows) and all(
        np.mean(res.loss[-20:]) < np.mean(res.loss[:5]) for _, res, _, _ in runs[:1]
    )
    return report.finish(
        {
            "demo": "compress",
            "test_image": f"camera {test.shape[0]}x{test.shape[1]}",
            "rows": rows,
            "jpeg": {"bpp": jb.tolist(), "psnr": jp.tolist()},
            "mismatch": mismatch,
            "ok": bool(ok),
        }
    )


def _plots(report, runs, jpeg, test, mid, jpeg_roundtrip, psnr):
    jb, jp = jpeg

    def rd(fig):
        ax = fig.add_subplot()
        ax.plot(jb, jp, "-", color="grey", label="JPEG (Pillow, optimised Huffman)")
        ax.plot([r[2].bpp_actual for r in runs], [r[2].psnr_hard for r in runs], "o-",
                label="learned codec, actual bits")  # fmt: skip
        ax.plot([r[2].bpp_estimated for r in runs], [r[2].psnr_hard for r in runs], "x",
                label="learned codec, estimated bits")  # fmt: skip
        top = max(r[2].bpp_actual for r in runs) * 1.3
        shown = [p for b, p in zip(jb, jp, strict=True) if b <= top]
        shown += [r[2].psnr_hard for r in runs]
        ax.set_ylim(min(shown) - 1, max(shown) + 1)
        ax.set(xlim=(0, top), xlabel="bits per pixel", ylabel="PSNR (dB)",
               title="rate-distortion on held-out camera")  # fmt: skip
        ax.legend(fontsize=8)

    def rates(fig):
        ax = fig.add_subplot()
        x = np.arange(len(runs))
        for k, (key, label) in enumerate(
            [("bpp_noise", "noise estimate (training)"), ("bpp_estimated", "rounded estimate"),
             ("bpp_actual", "actual (range coder)")]
        ):  # fmt: skip
            ax.bar(x + (k - 1) * 0.27, [getattr(r[2], key) for r in runs], 0.27, label=label)
        ax.set_xticks(x, [f"lambda {r[0]:g}" for r in runs])
        ax.set(ylabel="bits per pixel", title="estimated vs actual rate")
        ax.legend(fontsize=8)

    codec, ev = runs[mid][3], runs[mid][2]
    ours = codec.decompress(codec.compress(test / 255.0))
    q = int(np.argmin([abs(8.0 * jpeg_roundtrip(test, q)[0] / test.size - ev.bpp_actual)
                       for q in range(2, 96)])) + 2  # fmt: skip
    jbytes, jdec = jpeg_roundtrip(test, q)

    def recon(fig):
        s = slice(test.shape[0] // 4, test.shape[0] // 4 + 128)
        panels = [
            (test, "original"),
            (ours * 255, f"learned {ev.bpp_actual:.3f} bpp, {ev.psnr_hard:.1f} dB"),
            (jdec, f"JPEG q{q} {8 * jbytes / test.size:.3f} bpp, {psnr(test, jdec, 255.0):.1f} dB"),
        ]
        for i, (img, title) in enumerate(panels):
            ax = fig.add_subplot(1, 3, i + 1)
            ax.imshow(img[s, s], cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=7)
            ax.axis("off")

    def training(fig):
        ax = fig.add_subplot()
        start = 0
        for lmbda, res, _, _ in runs:
            steps = np.arange(start, start + len(res.bpp))
            ax.plot(steps, res.bpp, lw=0.6, label=f"bpp, lambda {lmbda:g}")
            start += len(res.bpp)
        ax.set(xlabel="step (runs warm-started one after the other)",
               ylabel="bits per pixel (noise estimate)", title="training")  # fmt: skip
        ax.legend(fontsize=7)

    report.figure("rd_curve.png", rd)
    report.figure("rates.png", rates)
    report.figure("reconstructions.png", recon)
    report.figure("training.png", training)


def main(args: argparse.Namespace) -> int:
    """``diffsys demo compress``: 1 when a stream does not decode exactly or training fails."""
    from . import report_folder

    out, plots = report_folder("compress", args), not args.no_plots
    cfg = CompressConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = CompressConfig(
            seed=args.seed, out=out, plots=plots, lambdas=(0.005, 0.03), first_steps=60,
            steps=30, noise_only_steps=0, patches=3000, hidden=32, crop=128,
        )  # fmt: skip
    with one_blas_thread():
        summary = run(cfg)
    return 0 if summary["ok"] else 1
