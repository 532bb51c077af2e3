"""Datalog fixpoints (diffsys.systems.logic) and soft-DTW (diffsys.relax.soft_dtw).

- ``logic_closure``: the transitive closure of a sparse random 2,000-node graph (1,700
  edges, seed 0), exact (boolean). Peers: a DuckDB recursive CTE (``UNION``, set semantics:
  the exact case a database engine handles) and SciPy's breadth-first search per node (the
  reference).
- ``logic_max_product``: the same closure in the max-product semiring (best-proof
  probability of every reachable pair, the edge probabilities as traced weights), forward and
  the gradient of the sum of all path probabilities. Reference: SciPy's Dijkstra on
  ``-log p`` (values).
- ``logic_topk``: the same closure in ``TopKProofs(1)`` (values).
- ``logic_problog``: exact P(path(0, b)) on an 8-node, 14-edge probabilistic graph with
  cycles, diffsys ``TopKProofs`` with k covering every proof beside ProbLog (reference: all
  2^14 possible worlds). ProbLog's knowledge compilation is far faster here (about 30 ms
  against diffsys's seconds: proofs are sets kept in Python and the count is by inclusion-
  exclusion or world enumeration).
- ``soft_dtw``: soft-DTW of two 512-step series (gamma 1), forward + gradient wrt the cost
  matrix. Reference: an independent NumPy version of Cuturi & Blondel's two recursions;
  peers: tslearn's ``SoftDTW`` (both recursions compiled by Numba, the library soft-DTW users
  pick) and the same anti-diagonal recursion in PyTorch with autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import torch_single_thread
from ._spec import Impl, Thunk, Workload

NODES, EDGES = 2000, 1700
N_DTW = 512
RULES = "path(x, y) :- edge(x, y).\npath(x, z) :- edge(x, y), path(y, z).\n"


def _graph() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pairs = set()
    while len(pairs) < EDGES:
        a, b = (int(v) for v in rng.integers(0, NODES, 2))
        if a != b:
            pairs.add((a, b))
    edges = np.array(sorted(pairs), dtype=np.int64)
    return edges, rng.uniform(0.5, 0.99, len(edges))


def _sorted_pairs(pairs: np.ndarray) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _reference_closure() -> tuple[np.ndarray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    edges, _ = _graph()
    adj = csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(NODES, NODES))
    out = []
    for a in np.unique(edges[:, 0]):
        order = breadth_first_order(adj, a, return_predecessors=False)[1:]
        # a reaches itself when a node it reaches has an edge back to it (a cycle)
        cyc = np.isin(edges[edges[:, 1] == a, 0], order).any()
        nodes = np.concatenate([order, [a]]) if cyc else order
        out.append(np.stack([np.full(len(nodes), a), nodes], 1))
    return (_sorted_pairs(np.concatenate(out)),)


def _diffsys_closure() -> Thunk:
    from diffsys.systems import logic

    edges, _ = _graph()
    prog = logic.Program.parse(RULES)

    def run() -> Any:
        res = prog.run({"edge": edges}, None, logic.BOOLEAN)
        g = res.grounding
        rows = g.relations["path"][np.asarray(res.weights("path"))]
        return (_sorted_pairs(np.asarray(g.symbols)[rows]),)

    return run


def _duckdb_closure() -> Thunk:
    import duckdb

    edges, _ = _graph()
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    con.execute("CREATE TABLE edge AS SELECT * FROM (SELECT 0::BIGINT a, 0::BIGINT b) LIMIT 0")
    con.executemany("INSERT INTO edge VALUES (?, ?)", edges.tolist())
    sql = """WITH RECURSIVE path(a, b) AS (
                 SELECT a, b FROM edge
                 UNION SELECT e.a, p.b FROM edge e JOIN path p ON e.b = p.a)
             SELECT a, b FROM path"""

    def run() -> Any:
        return (_sorted_pairs(np.array(con.execute(sql).fetchall(), dtype=np.int64)),)

    return run


def _reference_max_product() -> tuple[np.ndarray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    edges, p = _graph()
    (pairs,) = _reference_closure()
    adj = csr_matrix((-np.log(p), (edges[:, 0], edges[:, 1])), shape=(NODES, NODES))
    src = np.unique(pairs[:, 0])
    dist = dijkstra(adj, indices=src)
    row = np.searchsorted(src, pairs[:, 0])
    d = dist[row, pairs[:, 1]]
    # path(a, a) exists only through a cycle: the best path a -> u plus the edge u -> a
    length = -np.log(p)
    for k in np.flatnonzero(pairs[:, 0] == pairs[:, 1]):
        a = pairs[k, 0]
        into = edges[:, 1] == a
        d[k] = np.min(dist[row[k], edges[into, 0]] + length[into])
    return (np.exp(-d),)


def _diffsys_max_product() -> Thunk:
    import diffsys as ds
    from diffsys.systems import logic

    edges, p = _graph()
    prog = logic.Program.parse(RULES)
    g = prog.ground({"edge": edges})
    sym = np.asarray(g.symbols)
    order = np.lexsort((sym[g.relations["path"][:, 1]], sym[g.relations["path"][:, 0]]))

    def run() -> Any:
        def total(w):
            return logic.evaluate(g, {"edge": w}, logic.MAX_PRODUCT).weights("path")

        vals, pull = ds.vjp(total, p)
        pull(np.ones(len(vals)))
        return (np.asarray(vals)[order],)

    return run


def _diffsys_top1() -> Thunk:
    from diffsys.systems import logic

    edges, p = _graph()
    g = logic.Program.parse(RULES).ground({"edge": edges})
    sym = np.asarray(g.symbols)
    order = np.lexsort((sym[g.relations["path"][:, 1]], sym[g.relations["path"][:, 0]]))

    def run() -> Any:
        res = logic.evaluate(g, {"edge": p}, logic.TopKProofs(1))
        return (np.asarray(res.weights("path"))[order],)

    return run


# --- exact probabilistic inference beside ProbLog ------------------------------------------------

PL_NODES, PL_EDGES = 8, 14


def _small_graph() -> tuple[list[tuple[int, int]], np.ndarray]:
    rng = np.random.default_rng(0)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < PL_EDGES:
        a, b = (int(v) for v in rng.integers(0, PL_NODES, 2))
        if a != b:
            pairs.add((a, b))
    return sorted(pairs), rng.uniform(0.1, 0.9, PL_EDGES).round(3)


def _reference_reach_probability() -> tuple[np.ndarray]:
    """P(path(0, b)) for b = 1..n-1 by enumerating all 2^14 possible worlds (vectorised)."""
    edges, p = _small_graph()
    worlds = (np.arange(2**PL_EDGES)[:, None] >> np.arange(PL_EDGES)) & 1
    weight = np.prod(np.where(worlds, p, 1 - p), axis=1)
    adj = np.zeros((len(worlds), PL_NODES, PL_NODES), dtype=bool)
    for k, (a, b) in enumerate(edges):
        adj[:, a, b] = worlds[:, k].astype(bool)
    reach = adj[:, 0, :].copy()
    for _ in range(PL_NODES):
        reach |= np.einsum("wi,wij->wj", reach, adj) > 0
    return (weight @ reach[:, 1:],)


def _diffsys_exact() -> Thunk:
    from diffsys.systems import logic

    edges, p = _small_graph()
    prog = logic.Program.parse(RULES)

    def run() -> Any:
        res = prog.run({"edge": edges}, {"edge": p}, logic.TopKProofs(10**6))
        have = set(res.grounding.tuples("path"))
        return (np.array([float(res.weight("path", (0, b))) if (0, b) in have else 0.0
                          for b in range(1, PL_NODES)]),)

    return run


def _problog_exact() -> Thunk:
    from problog import get_evaluatable
    from problog.program import PrologString

    edges, p = _small_graph()
    text = "".join(f"{q}::edge({a},{b}).\n" for (a, b), q in zip(edges, p, strict=True))
    text += "path(X, Y) :- edge(X, Y).\npath(X, Z) :- edge(X, Y), path(Y, Z).\n"
    text += "".join(f"query(path(0,{b})).\n" for b in range(1, PL_NODES))

    def run() -> Any:
        res = get_evaluatable().create_from(PrologString(text)).evaluate()
        got = {str(k): float(v) for k, v in res.items()}
        return (np.array([got.get(f"path(0,{b})", 0.0) for b in range(1, PL_NODES)]),)

    return run


# --- soft-DTW ------------------------------------------------------------------------------------


def _dtw_inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal(N_DTW)) * 0.1
    y = np.cumsum(rng.standard_normal(N_DTW)) * 0.1
    return (x[:, None] - y[None, :]) ** 2


def numpy_soft_dtw(D: np.ndarray, gamma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Value and gradient wrt ``D``: both recursions of the paper, row by row (independent of
    diffsys's anti-diagonal code)."""
    n, m = D.shape
    R = np.full((n + 2, m + 2), np.inf)
    R[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            a, b, c = -R[i - 1, j - 1] / gamma, -R[i - 1, j] / gamma, -R[i, j - 1] / gamma
            mx = max(a, b, c)
            R[i, j] = D[i - 1, j - 1] - gamma * (mx + np.log(np.exp(a - mx) + np.exp(b - mx)
                                                             + np.exp(c - mx)))
    Dp = np.zeros((n + 2, m + 2))
    Dp[1 : n + 1, 1 : m + 1] = D
    R[:, m + 1] = -np.inf
    R[n + 1, :] = -np.inf
    R[n + 1, m + 1] = R[n, m]
    E = np.zeros((n + 2, m + 2))
    E[n + 1, m + 1] = 1.0
    for i in range(n, 0, -1):
        for j in range(m, 0, -1):
            a = np.exp((R[i + 1, j] - R[i, j] - Dp[i + 1, j]) / gamma)
            b = np.exp((R[i, j + 1] - R[i, j] - Dp[i, j + 1]) / gamma)
            c = np.exp((R[i + 1, j + 1] - R[i, j] - Dp[i + 1, j + 1]) / gamma)
            E[i, j] = E[i + 1, j] * a + E[i, j + 1] * b + E[i + 1, j + 1] * c
    return np.array(R[n, m]), E[1 : n + 1, 1 : m + 1]


def _diffsys_dtw() -> Thunk:
    import diffsys as ds
    from diffsys.relax import soft_dtw_cost

    D = _dtw_inputs()

    def run() -> Any:
        return ds.value_and_grad(lambda d: soft_dtw_cost(d, 1.0))(D)

    return run


def _tslearn_dtw() -> Thunk:
    from tslearn.metrics import SoftDTW

    D = _dtw_inputs()
    SoftDTW(D[:4, :4], 1.0).compute()  # compile the Numba kernels outside the timing

    def run() -> Any:
        sdtw = SoftDTW(D, 1.0)
        value = sdtw.compute()
        return np.array(value), sdtw.grad()

    return run


def _torch_dtw() -> Thunk:
    torch = torch_single_thread()
    D0 = torch.tensor(_dtw_inputs())

    def run() -> Any:
        D = D0.clone().requires_grad_(True)
        n, m = D.shape
        inf = torch.tensor([float("inf")], dtype=D.dtype)
        prev2 = torch.cat([torch.zeros(1, dtype=D.dtype), inf.expand(n)])
        prev1 = inf.expand(n + 1)
        for k in range(2, n + m + 1):
            lo, hi = max(1, k - m), min(n, k - 1)
            i = torch.arange(lo, hi + 1)
            z = torch.stack([prev2[i - 1], prev1[i - 1], prev1[i]])
            vals = D[i - 1, k - i - 1] - torch.logsumexp(-z, dim=0)
            prev2, prev1 = prev1, torch.cat([inf.expand(lo), vals, inf.expand(n - hi)])
        value = prev1[n]
        (g,) = torch.autograd.grad(value, D)
        return value.detach().numpy(), g.numpy()

    return run


WORKLOAD_CLOSURE = Workload(
    name="logic_closure",
    title="Datalog transitive closure, boolean",
    description=(
        f"`Program.run` of `path` (two rules, recursive) over a random {NODES}-node graph with "
        f"{EDGES} edges (seed 0), semiring BOOLEAN: semi-naive grounding with vectorised joins. "
        "DuckDB: a recursive CTE with UNION on one thread. Reference: SciPy BFS per node."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    own_target=True,
    reference=_reference_closure,
    impls={
        "diffsys": Impl(_diffsys_closure, "`logic.Program.run(..., BOOLEAN)`"),
        "sql": Impl(_duckdb_closure, "`WITH RECURSIVE ... UNION`"),
    },
    tolerance=0.0,
)

WORKLOAD_MAX_PRODUCT = Workload(
    name="logic_max_product",
    title="Datalog closure, max-product, values + gradient",
    description=(
        "The same program and graph, edge probabilities U(0.5, 0.99) as traced weights: the "
        "best-proof probability of every reachable pair and the VJP of a ones cotangent "
        "(ground once, outside the timing). Reference: SciPy Dijkstra on -log p."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    own_target=True,
    reference=_reference_max_product,
    impls={"diffsys": Impl(_diffsys_max_product, "`ds.vjp(logic.evaluate(.., MAX_PRODUCT))`")},
    tolerance=1e-10,
)

WORKLOAD_TOP1 = Workload(
    name="logic_topk",
    title="Datalog closure, top-k proofs (k = 1)",
    description=(
        "The same program and graph in `TopKProofs(1)` (Scallop's differentiable top-k "
        "proofs): proofs are kept per rule instance in Python, then each tuple's probability "
        "is a weighted model count. With k = 1 it is the best proof's probability, so the "
        "reference is SciPy Dijkstra on -log p. ProbLog does not finish at this size."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    own_target=True,
    reference=_reference_max_product,
    impls={"diffsys": Impl(_diffsys_top1, "`logic.evaluate(.., TopKProofs(1))`")},
    tolerance=1e-10,
)

WORKLOAD_SOFT_DTW = Workload(
    name="soft_dtw",
    title=f"soft-DTW {N_DTW} x {N_DTW}, forward + backward",
    description=(
        f"`relax.soft_dtw_cost(D, 1.0)` on the squared-distance matrix of two {N_DTW}-step "
        "random walks (seed 0), value and gradient. NumPy: both recursions of the paper, an "
        "independent cell-by-cell version (also the reference). PyTorch: the anti-diagonal "
        "recursion with autograd. tslearn: `SoftDTW(D, 1.0).compute()` and `.grad()` (Numba, "
        "compiled before the timing)."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    own_target=True,
    reference=lambda: numpy_soft_dtw(_dtw_inputs()),
    impls={
        "diffsys": Impl(_diffsys_dtw, "`ds.value_and_grad(relax.soft_dtw_cost)`"),
        "numpy": Impl(lambda: (lambda D: lambda: numpy_soft_dtw(D))(_dtw_inputs()),
                      "cell-by-cell Python loops"),
        "torch": Impl(_torch_dtw, "anti-diagonal recursion + `autograd.grad`"),
        "tslearn": Impl(_tslearn_dtw, "`metrics.SoftDTW(D).compute()`, `.grad()`"),
    },
    tolerance=1e-9,
)

WORKLOAD_PROBLOG = Workload(
    name="logic_problog",
    title=f"Exact reachability probabilities, {PL_NODES} nodes, {PL_EDGES} edges",
    description=(
        f"The `path` program on a random {PL_NODES}-node graph with {PL_EDGES} probabilistic "
        "edges (cycles; seed 0): P(path(0, b)) for every b, exactly. diffsys: `Program.run` "
        "(grounding included) in `TopKProofs(10**6)` (k covers every proof: ProbLog's answer). "
        "ProbLog: the same program as text, `get_evaluatable().create_from(..).evaluate()` "
        "(grounding and knowledge compilation included). Reference: all 2^14 possible worlds."
    ),
    unit="ms",
    scale=1e3,
    target=float("inf"),
    own_target=True,
    reference=_reference_reach_probability,
    impls={
        "diffsys": Impl(_diffsys_exact, "`Program.run(.., TopKProofs(10**6))`"),
        "problog": Impl(_problog_exact, "`get_evaluatable().create_from(..).evaluate()`"),
    },
    tolerance=1e-10,
)

WORKLOADS = [WORKLOAD_CLOSURE, WORKLOAD_MAX_PRODUCT, WORKLOAD_TOP1, WORKLOAD_PROBLOG,
             WORKLOAD_SOFT_DTW]
