"""``diffsys demo retrieval``: learn the ranking weights of a product search from clicks.

1. ``make_catalog``: a generated 100k-row product table in DuckDB (price, rating, reviews,
   discount, age, return rate; 40 categories).
2. ``make_queries``: each query is an exact SQL part (``category = ? AND price <= ?``, bound);
   its candidates come back from DuckDB as arrays, and click labels come from a hidden true
   scoring rule (plus noise) that the demo never shows the learner.
3. ``train``: a linear score over the standardized features, trained with the soft NDCG@10
   loss (soft ranks and a soft top-k) on 30 training queries.
4. ``evaluate``: NDCG@10 on 10 held-out queries, before training, for a hand-tuned baseline,
   for the learned weights and for the hidden rule itself (the ceiling).
5. ``compile_and_run``: the learned weights as a :class:`Query` compiled to SQL; DuckDB runs
   ``ORDER BY score DESC LIMIT 10`` for every held-out query, and its rows are checked
   against the NumPy hard result row for row.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from ... import optim as _optim
from ...core.transforms import value_and_grad
from ...systems.db import Candidates, Database, Param, Query, ndcg, soft_ndcg_loss
from ._common import Report

__all__ = ["RetrievalConfig", "run"]

FEATURES = ("rating", "log_reviews", "price", "discount", "age_days", "return_rate")
#: The hidden rule (over standardized features) that makes the clicks.
TRUE_WEIGHTS = np.array([1.0, 0.6, -0.5, 0.7, -0.4, -0.6])
#: A sensible hand-tuned ranking: good ratings, many reviews, low prices, discounts.
HAND_WEIGHTS = np.array([1.0, 0.5, -0.5, 0.5, 0.0, 0.0])
K = 10


@dataclass(frozen=True)
class RetrievalConfig:
    seed: int = 0
    rows: int = 100_000
    categories: int = 40
    train_queries: int = 30
    steps: int = 60
    learning_rate: float = 0.05
    regularization_strength: float = 0.1
    out: str = "diffsys-demo-retrieval"
    plots: bool = True


def make_catalog(db: Database, cfg: RetrievalConfig) -> None:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    reviews = rng.poisson(np.exp(rng.normal(3.0, 1.5, n)))
    db.create_table(
        "products",
        {
            "id": np.arange(n),
            "category": rng.integers(0, cfg.categories, n),
            "price": np.round(np.exp(rng.normal(3.5, 0.8, n)), 2),
            "rating": np.clip(rng.normal(3.8, 0.7, n), 1, 5).round(2),
            "reviews": reviews,
            "log_reviews": np.log1p(reviews),
            "discount": rng.choice([0.0, 0.0, 0.0, 0.1, 0.2, 0.3], n),
            "age_days": rng.integers(0, 720, n),
            "return_rate": np.clip(rng.normal(0.08, 0.04, n), 0, 1).round(3),
        },
        replace=True,
    )


def feature_scale(db: Database) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature over the whole table (one SQL query)."""
    cols = ", ".join(f'AVG("{f}"), STDDEV_POP("{f}")' for f in FEATURES)
    row = np.array(db.con.execute(f"SELECT {cols} FROM products").fetchone())
    return row[0::2], row[1::2]


def make_queries(db, cfg, mean, std) -> list[tuple[dict, Candidates, np.ndarray]]:
    """``(params, candidates, clicks)`` per query; ~20 clicks per query from the hidden rule."""
    rng = np.random.default_rng(cfg.seed + 1)
    template = Query(
        "products",
        key="id",
        features=FEATURES,
        filters=[("category", "=", Param("category")), ("price", "<=", Param("budget"))],
        k=K,
    )
    out = []
    budgets = rng.choice([40.0, 80.0, 200.0, 10_000.0], cfg.categories)
    for c in range(cfg.categories):
        params = {"category": c, "budget": float(budgets[c])}
        cands = template.candidates(db, params)
        z = (cands.x - mean) / std
        utility = z @ TRUE_WEIGHTS + rng.normal(0.0, 0.3, len(z))
        clicks = (utility >= np.quantile(utility, 1 - 20 / len(z))).astype(np.float64)
        out.append((params, cands, clicks))
    return out


def train(queries, cfg, mean, std, report: Report) -> tuple[np.ndarray, list[float]]:
    """Weights over standardized features, by Adam on the mean soft NDCG@10 loss."""
    zs = [((c.x - mean) / std, y) for _, c, y in queries]

    def loss(u):
        total = 0.0
        for z, y in zs:
            total = total + soft_ndcg_loss(z @ u, y, K, cfg.regularization_strength)
        return total / len(zs)

    u = np.full(len(FEATURES), 1.0 / np.sqrt(len(FEATURES)))
    opt = _optim.adam(cfg.learning_rate)
    state = opt.init(u)
    history = []
    for step in range(cfg.steps):
        value, g = value_and_grad(loss)(u)
        updates, state = opt.update(g, state, u)
        u = _optim.apply_updates(u, updates)
        history.append(float(value))
        if step % 10 == 0 or step == cfg.steps - 1:
            report.say(f"  step {step:3d}  soft NDCG@10 loss {float(value):.4f}")
    return u, history


def evaluate(queries, weights, mean, std) -> float:
    return float(np.mean([ndcg(((c.x - mean) / std) @ weights, y, K) for _, c, y in queries]))


def as_query(u: np.ndarray, mean: np.ndarray, std: np.ndarray) -> Query:
    """Standardized weights ``u`` as a query over the raw columns:
    ``sum u (x - mean) / std = sum (u / std) x - sum u mean / std``."""
    return Query(
        "products",
        key="id",
        features=FEATURES,
        weights=u / std,
        bias=float(-np.sum(u * mean / std)),
        filters=[("category", "=", Param("category")), ("price", "<=", Param("budget"))],
        k=K,
    )


def compile_and_run(db, query: Query, queries) -> dict:
    """Run the compiled query in DuckDB for each query; compare with NumPy row for row."""
    same, gains, seconds = 0, [], []
    for params, cands, clicks in queries:
        t = time.perf_counter()
        result = query.execute(db, params)
        seconds.append(time.perf_counter() - t)
        same += int(np.array_equal(result.keys, query.hard_result(cands).keys))
        clicked = clicks[np.searchsorted(cands.keys, result.keys)]
        dcg = np.sum(clicked / np.log2(np.arange(2, clicked.size + 2)))
        ideal = np.sum(1.0 / np.log2(np.arange(2, min(K, int(clicks.sum())) + 2)))
        gains.append(dcg / ideal)
    return {
        "identical_to_numpy": f"{same}/{len(queries)}",
        "ndcg_at_10": float(np.mean(gains)),
        "ms_per_query": 1e3 * float(np.median(seconds)),
    }


def run(cfg: RetrievalConfig, stream=None) -> dict:
    report = Report("retrieval", cfg.out, plots=cfg.plots, stream=stream)
    say = report.say
    say("diffsys demo retrieval: learning ranking weights from clicks, served by DuckDB")
    db = Database()
    t = time.perf_counter()
    make_catalog(db, cfg)
    mean, std = feature_scale(db)
    queries = make_queries(db, cfg, mean, std)
    sizes = [len(c.keys) for _, c, _ in queries]
    say(
        f"1. catalog: {cfg.rows:,} products in DuckDB; {len(queries)} queries "
        f"(category = ? AND price <= ?), {min(sizes)}-{max(sizes)} candidates each, "
        f"fetched as arrays ({time.perf_counter() - t:.1f} s)"
    )
    train_q, test_q = queries[: cfg.train_queries], queries[cfg.train_queries :]
    say(f"2. training on {len(train_q)} queries, soft NDCG@10 loss, Adam, {cfg.steps} steps")
    u0 = np.full(len(FEATURES), 1.0 / np.sqrt(len(FEATURES)))
    t = time.perf_counter()
    u, history = train(train_q, cfg, mean, std, report)
    train_s = time.perf_counter() - t
    scores = {
        "before training": evaluate(test_q, u0, mean, std),
        "hand-tuned": evaluate(test_q, HAND_WEIGHTS, mean, std),
        "learned": evaluate(test_q, u, mean, std),
        "hidden rule": evaluate(test_q, TRUE_WEIGHTS, mean, std),
    }
    say(f"3. NDCG@10 on {len(test_q)} held-out queries:")
    for name, value in scores.items():
        say(f"   {name:16s} {value:.3f}")
    cosine = float(u @ TRUE_WEIGHTS / np.linalg.norm(u) / np.linalg.norm(TRUE_WEIGHTS))
    say(f"   cosine(learned, hidden rule) = {cosine:.3f}")
    query = as_query(u, mean, std)
    sql, _ = query.compile(db, test_q[0][0])
    served = compile_and_run(db, query, test_q)
    say("4. the learned query, compiled to SQL (values bound):")
    say("   " + sql)
    say(
        f"   DuckDB: NDCG@10 {served['ndcg_at_10']:.3f}, {served['ms_per_query']:.1f} ms per "
        f"query; rows identical to the NumPy hard result in {served['identical_to_numpy']} "
        "queries"
    )
    query.save(report.dir / "query.json")
    report.files.append("query.json")

    def loss_plot(fig):
        ax = fig.add_subplot()
        ax.plot(history)
        ax.set(xlabel="step", ylabel="soft NDCG@10 loss", title="training loss")

    def ndcg_plot(fig):
        ax = fig.add_subplot()
        ax.bar(list(scores), list(scores.values()), color=["grey", "tab:orange", "tab:blue", "k"])
        ax.set(ylabel="NDCG@10 (held-out)", ylim=(0, 1), title="ranking quality")

    def weights_plot(fig):
        ax = fig.add_subplot()
        x = np.arange(len(FEATURES))
        ax.bar(x - 0.2, TRUE_WEIGHTS / np.linalg.norm(TRUE_WEIGHTS), 0.4, label="hidden rule")
        ax.bar(x + 0.2, u / np.linalg.norm(u), 0.4, label="learned")
        ax.set_xticks(x, FEATURES, rotation=20)
        ax.set(ylabel="weight (unit norm, standardized features)")
        ax.legend()

    report.figure("loss.png", loss_plot)
    report.figure("ndcg.png", ndcg_plot)
    report.figure("weights.png", weights_plot)
    return report.finish(
        {
            "demo": "retrieval",
            "rows": cfg.rows,
            "queries": {"train": len(train_q), "held_out": len(test_q)},
            "ndcg_at_10": scores,
            "cosine_to_hidden_rule": cosine,
            "loss": {"first": history[0], "last": history[-1]},
            "train_seconds": round(train_s, 2),
            "duckdb": served,
            "learned_weights_raw": [float(w) for w in query.weights],
            "sql": sql,
        }
    )


def main(args: argparse.Namespace) -> int:
    """``diffsys demo retrieval``: 1 when the learned ranking is no better than the start."""
    from . import report_folder

    out, plots = report_folder("retrieval", args), not args.no_plots
    cfg = RetrievalConfig(seed=args.seed, out=out, plots=plots)
    if args.quick:
        cfg = RetrievalConfig(
            seed=args.seed, out=out, plots=plots, rows=20_000, categories=12,
            train_queries=8, steps=15,
        )  # fmt: skip
    summary = run(cfg)
    ndcg_at_10 = summary["ndcg_at_10"]
    return 0 if ndcg_at_10["learned"] > ndcg_at_10["before training"] else 1
