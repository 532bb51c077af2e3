"""diffsys.systems.search pipelines: the retrieval distributions (softmax over the exact top
k, soft top-k via relax.soft_topk_mask), the mixture likelihood, the ready stages (kinds,
relaxed/hard forms, mismatch), the whole search pipeline against RetrievalQA.loss, saving
and loading it, and training with soft top-k retrieval."""

from __future__ import annotations

import numpy as np
import pytest

import diffsys as ds

pytest.importorskip("duckdb")

import diffsys.pipeline as pl  # noqa: E402
from diffsys import optim  # noqa: E402
from diffsys.systems.db import Database, QueryError  # noqa: E402
from diffsys.systems.search import (  # noqa: E402
    EmbeddingIndex,
    Reader,
    RetrievalQA,
    SoftRetrieval,
    marginal_nll,
    mixture_nll,
    retrieval_stage,
    retrieval_weights,
    search_pipeline,
    top_k,
    train_search,
)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_retrieval_weights_softmax_over_the_exact_top_k(rng):
    s = rng.normal(size=(4, 9))
    w = retrieval_weights(s, 3)
    idx = np.argsort(-s, axis=1)[:, :3]
    ref = np.zeros_like(s)
    np.put_along_axis(ref, idx, _softmax(np.take_along_axis(s, idx, 1)), 1)
    np.testing.assert_allclose(w, ref, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(retrieval_weights(s), _softmax(s), rtol=1e-13)
    ds.check_grads(lambda s: retrieval_weights(s, 3), (s,), order=2)


def test_soft_topk_weights_tend_to_the_hard_top_k(rng):
    s = rng.normal(size=(5, 12))
    hard = SoftRetrieval(4, regularization_strength=1.0).hard(s)
    np.testing.assert_allclose(hard.sum(1), 1.0)
    np.testing.assert_array_equal(np.sort(np.argsort(-hard, 1, kind="stable")[:, :4], 1),
                                  np.sort(np.argsort(-s, 1)[:, :4], 1))  # fmt: skip
    gaps = []
    for eps in (3.0, 0.3, 1e-4):
        w = retrieval_weights(s, 4, "soft_topk", eps)
        np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)
        assert np.all(w >= 0) and np.all(w <= 0.25 + 1e-12)
        gaps.append(np.abs(w - hard).max())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-12
    ds.check_grads(lambda s: retrieval_weights(s, 4, "soft_topk", 2.0), (s,), order=2)


def test_mixture_nll_value_zero_weights_and_grads(rng):
    r = np.log(rng.uniform(0.05, 1.0, size=(3, 6)))
    w = _softmax(rng.normal(size=(3, 6)))
    ref = -np.mean(np.log(np.sum(w * np.exp(r), axis=1)))
    np.testing.assert_allclose(mixture_nll(w, r), ref, rtol=1e-13)
    ds.check_grads(mixture_nll, (w, r), order=2)
    w0 = w.copy()
    w0[:, :2] = 0.0  # zero weights (soft top-k's sparse mask): finite value and gradient
    gw, gr = ds.grad(mixture_nll, argnums=(0, 1))(w0, r)
    assert np.all(np.isfinite(gw)) and np.all(np.isfinite(gr)) and np.all(gr[:, :2] == 0)
    # softmax retrieval through marginal_nll is the log-sum-exp form it had
    s = rng.normal(size=(3, 6))
    np.testing.assert_allclose(marginal_nll(s, r, k=6), marginal_nll(s, r), rtol=1e-13)
    soft = marginal_nll(s, r, retrieval="soft_topk", k=2, regularization_strength=0.5)
    np.testing.assert_allclose(soft, mixture_nll(retrieval_weights(s, 2, "soft_topk", 0.5), r))
    ds.check_grads(
        lambda s: marginal_nll(s, r, retrieval="soft_topk", k=2, regularization_strength=3.0),
        (s,),
        order=2,
    )
    with pytest.raises(ValueError, match="mixture_nll: retrieval weights \\(3, 6\\)"):
        mixture_nll(w, r[:, :5])
    with pytest.raises(ValueError, match="'soft_topk' needs k"):
        retrieval_weights(s, None, "soft_topk")
    with pytest.raises(ValueError, match=r"1 <= k <= 6"):
        retrieval_weights(s, 7)


def test_soft_retrieval_module_and_stage_kinds(rng):
    soft, exact = SoftRetrieval(2), SoftRetrieval(2, retrieval="softmax")
    assert retrieval_stage("r", soft).kind == "relaxed"
    assert retrieval_stage("r", exact).kind == "exact"
    s = rng.normal(size=(2, 5))
    np.testing.assert_array_equal(exact.hard(s), exact.relaxed(s))
    with pytest.raises(QueryError, match=r"SoftRetrieval\(k=2, 'soft_topk'\): scores must have "
                       r"shape \(B, m\) with m >= 2 candidates, got \(2, 1\)"):
        soft(s[:, :1])
    with pytest.raises(QueryError, match="retrieval must be one of"):
        SoftRetrieval(2, retrieval="sparsemax")
    with pytest.raises(QueryError, match="Reader: documents \\(B, m, d\\) and integer answers"):
        Reader(3, 2)(np.zeros((2, 4, 3)), np.array([0.5, 1.0]))


def _corpus(seed=0, docs=120, topic=6, qdim=10, answers=4, questions=300):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, answers, docs)
    t = rng.normal(size=(answers, topic))[labels] + 0.8 * rng.normal(size=(docs, topic))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    content = np.concatenate([t, np.eye(answers)[labels]], axis=1)
    gold = rng.integers(0, docs, questions)
    x = t[gold] @ rng.normal(size=(topic, qdim)) + 0.05 * rng.normal(size=(questions, qdim))
    return content, labels, x, labels[gold]


def _batch(model, content, x, y, m):
    cand = top_k(np.asarray(model.query_encoder(x)) @ np.asarray(model.embed_docs(content)).T, m)
    docs = content[cand]
    return cand, {"x": x, "doc_text": docs[..., : model.text_dim], "docs": docs, "y": y}


def test_search_pipeline_equals_retrieval_qa_loss_and_gradients():
    content, _, x, y = _corpus()
    model = RetrievalQA(10, content.shape[1], 5, 4, text_dim=6, key=1)
    cand, batch = _batch(model, content, x[:32], y[:32], 6)
    pipe = search_pipeline(model, 6, retrieval="softmax")
    (loss, _), g = ds.value_and_grad(pipe.loss, has_aux=True)(pipe.params, batch)
    ref, gm = ds.value_and_grad(RetrievalQA.loss)(model, x[:32], y[:32], content, cand)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    np.testing.assert_allclose(g["query"].weight, gm.query_encoder.weight, rtol=1e-10)
    np.testing.assert_allclose(g["doc_emb"].weight, gm.doc_encoder.weight, rtol=1e-10)
    np.testing.assert_allclose(g["read"].linear.weight, gm.reader.weight, rtol=1e-10)
    # soft top-k over a wider pool: RetrievalQA.loss with the same retrieval agrees
    cand, batch = _batch(model, content, x[:32], y[:32], 12)
    pipe = search_pipeline(model, 4, regularization_strength=0.7)
    ref = model.loss(x[:32], y[:32], content, cand, retrieval="soft_topk", k=4,
                     regularization_strength=0.7)  # fmt: skip
    np.testing.assert_allclose(pipe.loss(pipe.params, batch)[0], ref, rtol=1e-12)


def test_soft_topk_stage_mismatch_shrinks_and_infer_is_the_hard_top_k():
    content, _, x, y = _corpus()
    model = RetrievalQA(10, content.shape[1], 5, 4, text_dim=6, key=2)
    cand, batch = _batch(model, content, x[:16], y[:16], 10)
    gaps = []
    for eps in (5.0, 0.5, 1e-6):
        pipe = search_pipeline(model, 3, regularization_strength=eps)
        gaps.append(pipe.mismatch(batch)["retrieve"].max_abs)
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-9
    q = np.asarray(model.query_encoder(x[:16]))
    scores = np.sum(q[:, None, :] * np.asarray(model.embed_docs(content[cand])), axis=-1)
    hard = SoftRetrieval(3).hard(scores)
    loss = float(pipe.loss(pipe.params, batch, mode="infer")[0])
    read = np.asarray(Reader(1, 1, linear=model.reader)(content[cand], y[:16]))
    np.testing.assert_allclose(loss, mixture_nll(hard, read), rtol=1e-12)


def test_search_pipeline_saves_and_loads(tmp_path):
    pytest.importorskip("safetensors")
    content, _, x, y = _corpus()
    model = RetrievalQA(10, content.shape[1], 5, 4, text_dim=6, key=3)
    _, batch = _batch(model, content, x[:8], y[:8], 8)
    pipe = search_pipeline(model, 3, regularization_strength=0.4)
    pipe.save(tmp_path)
    again = pl.load(tmp_path)
    assert again.stages["retrieve"].module.regularization_strength == 0.4
    assert again.stages["retrieve"].kind == "relaxed"
    np.testing.assert_array_equal(
        again.loss(again.params, batch)[0], pipe.loss(pipe.params, batch)[0]
    )


def _held_out_accuracy(model, content, x, y, k=5):
    q = np.asarray(model.query_encoder(x))
    cand = top_k(q @ np.asarray(model.embed_docs(content)).T, k)
    return float(np.mean(model.predict(x, content, cand) == y))


def test_train_search_with_soft_topk_retrieval_learns():
    content, labels, x, y = _corpus()
    db = Database()
    runs = {}
    for retrieval in ("softmax", "soft_topk"):
        model = RetrievalQA(10, content.shape[1], 6, 4, text_dim=6, key=0)
        before = _held_out_accuracy(model, content, x[250:], y[250:])
        model, hist = train_search(model, optim.adam(0.05), EmbeddingIndex(db, f"i_{retrieval}"),
                                   content, x[:250], y[:250], doc_labels=labels, k=5, steps=60,
                                   batch=32, refresh_every=5, retrieval=retrieval, pool=15,
                                   regularization_strength=0.5)  # fmt: skip
        runs[retrieval] = hist
        assert _held_out_accuracy(model, content, x[250:], y[250:]) > before + 0.3
        assert np.mean(hist.loss[-10:]) < 0.5 * np.mean(hist.loss[:5])
    # the two objectives differ (soft top-k is not the softmax in disguise)
    assert abs(runs["softmax"].loss[0] - runs["soft_topk"].loss[0]) > 1e-3
    with pytest.raises(ValueError, match=r"pool \(3\) must be at least k \(5\)"):
        train_search(model, optim.adam(0.05), EmbeddingIndex(db, "i_bad"), content, x, y, k=5,
                     steps=1, retrieval="soft_topk", pool=3)  # fmt: skip
