"""``diffsys demo search``: question answering that needs retrieval, trained end to end.

1. ``make_corpus``: documents with a text part (a topic vector; the index embeds it) and an
   answer field (the reader reads it); questions are noisy projections of one document's
   topic, and their answer is that document's.
2. Two runs of :func:`~diffsys.systems.search.train_search` (marginal likelihood over the
   top-k documents of an index kept in DuckDB): the reader alone with the encoders left
   untrained, and everything end to end.
3. Staleness: the end-to-end run with the index refreshed every 1, 10 and 50 steps; how far
   the index drifts from the encoder, and what that does to the loss and the precision of
   the retrieved documents.
4. Held-out accuracy, retrieving through DuckDB (the inner product compiled to SQL) for a
   sample of questions, checked against the NumPy top-k.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from ... import optim
from ...systems.db import Database
from ...systems.search import EmbeddingIndex, RetrievalQA, train_search
from ._common import Report

__all__ = ["SearchConfig", "run"]


@dataclass(frozen=True)
class SearchConfig:
    seed: int = 0
    documents: int = 500
    topic_dim: int = 16
    question_dim: int = 24
    answers: int = 10
    questions: int = 3000
    held_out: int = 500
    k: int = 32
    steps: int = 400
    refresh_every: int = 20
    staleness_sweep: tuple[int, ...] = (1, 10, 50)
    learning_rate: float = 0.05
    out: str = "diffsys-demo-search"
    plots: bool = True


def make_corpus(cfg: SearchConfig):
    rng = np.random.default_rng(cfg.seed)
    answers = rng.integers(0, cfg.answers, cfg.documents)
    centers = rng.normal(size=(cfg.answers, cfg.topic_dim))
    topics = centers[answers] + 0.8 * rng.normal(size=(cfg.documents, cfg.topic_dim))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    content = np.concatenate([topics, np.eye(cfg.answers)[answers]], axis=1)
    mix = rng.normal(size=(cfg.topic_dim, cfg.question_dim)) / np.sqrt(cfg.topic_dim)
    gold = rng.integers(0, cfg.documents, cfg.questions)
    x = topics[gold] @ mix + 0.05 * rng.normal(size=(cfg.questions, cfg.question_dim))
    return content, answers, x, answers[gold]


def accuracy(model, index, content, x, y, k) -> float:
    index.write(np.arange(len(content)), np.asarray(model.embed_docs(content)))
    cand = index.search(np.asarray(model.query_encoder(x)), k)
    return float(np.mean(model.predict(x, content, cand) == y))


def run(cfg: SearchConfig, stream=None) -> dict:
    report = Report("search", cfg.out, plots=cfg.plots, stream=stream)
    say = report.say
    say("diffsys demo search: retrieval + reader trained end to end (marginal likelihood)")
    content, labels, x, y = make_corpus(cfg)
    tr, te = slice(0, cfg.questions - cfg.held_out), slice(cfg.questions - cfg.held_out, None)
    db = Database()
    say(
        f"1. {cfg.documents} documents (index in DuckDB), {cfg.questions - cfg.held_out} "
        f"training and {cfg.held_out} held-out questions, top-{cfg.k} retrieval"
    )

    def train(trainable, refresh_every, table):
        model = RetrievalQA(
            cfg.question_dim, content.shape[1], 16, cfg.answers, text_dim=cfg.topic_dim,
            key=cfg.seed + 1,
        )  # fmt: skip
        index = EmbeddingIndex(db, table)
        t = time.perf_counter()
        model, hist = train_search(
            model, optim.adam(cfg.learning_rate), index, content, x[tr], y[tr],
            doc_labels=labels, k=cfg.k, steps=cfg.steps, refresh_every=refresh_every,
            trainable=trainable, seed=cfg.seed,
        )  # fmt: skip
        return model, index, hist, time.perf_counter() - t

    runs = {}
    for name, trainable in [
        ("untrained encoders", ("reader",)),
        ("end to end", ("query_encoder", "doc_encoder", "reader")),
    ]:
        table = "index_" + name.replace(" ", "_")
        model, index, hist, secs = train(trainable, cfg.refresh_every, table)
        acc = accuracy(model, index, content, x[te], y[te], cfg.k)
        runs[name] = (model, index, hist, acc)
        say(f"2. {name:18s} held-out accuracy {acc:.3f}  loss {hist.loss[-1]:.3f}  ({secs:.1f} s)")
    say("3. index staleness (refresh every N steps, end to end):")
    sweep = {}
    for every in cfg.staleness_sweep:
        _, _, hist, _ = train(("query_encoder", "doc_encoder", "reader"), every, f"sweep_{every}")
        gap = np.array(hist.loss) - np.array(hist.loss_fresh)
        prec_gap = np.array(hist.precision_fresh) - np.array(hist.precision)
        sweep[every] = {
            "mean_staleness": float(np.mean(hist.staleness)),
            "max_staleness": float(np.max(hist.staleness)),
            "mean_loss_gap": float(np.mean(gap)),
            "mean_precision_gap": float(np.mean(prec_gap)),
            "final_loss": float(hist.loss[-1]),
            "history": hist,
        }
        say(
            f"   every {every:3d}: staleness mean {sweep[every]['mean_staleness']:.3f} max "
            f"{sweep[every]['max_staleness']:.3f}; loss(stale) - loss(fresh) "
            f"{sweep[every]['mean_loss_gap']:+.4f}; precision@k lost "
            f"{sweep[every]['mean_precision_gap']:+.4f}; final loss {hist.loss[-1]:.3f}"
        )
    model, index, _, acc = runs["end to end"]
    sample = x[te][:20]
    q = np.asarray(model.query_encoder(sample))
    sql_same = sum(
        np.array_equal(index.search_sql(qi, cfg.k), index.ids[index.search(qi[None], cfg.k)[0]])
        for qi in q
    )
    say(f"4. DuckDB top-{cfg.k} (compiled inner product) equals NumPy's: {sql_same}/{len(q)}")
    hists = {n: r[2] for n, r in runs.items()}

    def loss_plot(fig):
        ax = fig.add_subplot()
        for n, h in hists.items():
            ax.plot(h.loss, label=n)
        ax.set(xlabel="step", ylabel="marginal NLL", title="training loss")
        ax.legend()

    def stale_plot(fig):
        ax = fig.add_subplot(2, 1, 1)
        for every, s in sweep.items():
            ax.plot(s["history"].staleness, label=f"refresh every {every}")
        ax.set(ylabel="index staleness")
        ax.legend(fontsize=7)
        ax2 = fig.add_subplot(2, 1, 2)
        for every, s in sweep.items():
            h = s["history"]
            ax2.plot(np.array(h.loss) - np.array(h.loss_fresh), label=f"every {every}")
        ax2.set(xlabel="step", ylabel="loss(stale) - loss(fresh)")

    def acc_plot(fig):
        ax = fig.add_subplot()
        names = list(runs)
        ax.bar(names, [runs[n][3] for n in names], color=["grey", "tab:blue"])
        ax.set(ylim=(0, 1), ylabel="held-out accuracy")

    report.figure("loss.png", loss_plot)
    report.figure("staleness.png", stale_plot)
    report.figure("accuracy.png", acc_plot)
    return report.finish(
        {
            "demo": "search",
            "accuracy": {n: r[3] for n, r in runs.items()},
            "loss": {n: {"first": r[2].loss[0], "last": r[2].loss[-1]} for n, r in runs.items()},
            "staleness": {
                str(e): {k: v for k, v in s.items() if k != "history"} for e, s in sweep.items()
            },
            "duckdb_topk_equals_numpy": f"{sql_same}/{len(q)}",
        }
    )


def main(args: argparse.Namespace) -> int:
    """``diffsys demo search``: 1 when end-to-end training does not beat the untrained model."""
    from . import report_folder

    out, plots = report_folder("search", args), not args.no_plots
    cfg = SearchConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = SearchConfig(
            seed=args.seed, out=out, plots=plots, questions=1200, held_out=200, steps=120,
            refresh_every=10, staleness_sweep=(1, 10, 40),
        )  # fmt: skip
    acc = run(cfg)["accuracy"]
    return 0 if acc["end to end"] > acc["untrained encoders"] else 1
