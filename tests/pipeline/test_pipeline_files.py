"""Saved pipelines as untrusted input (every field checked and named, hostile shapes, no
file outside the folder) and as a way to resume: modes survive a save, and a run resumed
with Trainer.save/Trainer.load -- in this process or another -- is bit-identical to one that
was never interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors")

from pipeline_helpers import classifier_batch, make_classifier  # noqa: E402

import diffsys as ds  # noqa: E402
from diffsys import nn, optim  # noqa: E402
from diffsys import pipeline as pl  # noqa: E402
from diffsys.pipeline import SerializationError  # noqa: E402
from diffsys.train.checkpoint import _checksum  # noqa: E402
from file_corruption import check_all, corruptions, read_json, write_json  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def _resign(path, doc):
    body = {k: v for k, v in doc.items() if k != "checksum"}
    write_json(path, {**body, "checksum": _checksum(body)})


def _pipeline(seed=0):
    """Only diffsys's own registered types, so a fresh process can load it."""
    return pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(4, 8, key=seed), input_spec=pl.Spec(("B", 4), "float64")),
            pl.Stage("norm", nn.BatchNorm(8)),
            pl.Stage("act", nn.tanh),
            pl.Stage("head", nn.Linear(8, 3, key=seed + 1), output_spec=("B", 3)),
        ],
        losses=[
            pl.Loss("ce", nn.cross_entropy, ("head", "y")),
            pl.Loss(
                "l2",
                ds.numpy.mean,
                "enc",
                weight=pl.scheduled("linear", init_value=0.1, end_value=0.0, transition_steps=9),
            ),
        ],
        metrics=[pl.Metric("accuracy", pl.accuracy, ("head", "y"))],
    )


def _optimizer():
    return optim.chain(optim.clip_by_global_norm(1.0), optim.adam(optim.cosine_decay(0.05, 20)))


def _batches(n):
    rng = np.random.default_rng(7)
    return [classifier_batch(rng, 16) for _ in range(n)]


def _leaves(tree):
    return [np.asarray(v) for v in ds.tree_leaves(tree)]


def _assert_identical(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)


# --- 22.1: the mode survives a save --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_load_restores_the_mode_it_was_saved_in(tmp_path, mode):
    pipe = make_classifier()
    getattr(pipe, mode)()
    pipe.save(tmp_path / "p")
    again = pl.load(tmp_path / "p")
    assert again.mode == mode
    batch = classifier_batch(np.random.default_rng(0))
    # and it computes in that mode: the hard threshold at inference, the soft one in training
    np.testing.assert_array_equal(again(batch), pipe(batch, mode=mode))
    other = "train" if mode == "infer" else "infer"
    assert not np.array_equal(again(batch), pipe(batch, mode=other))


# --- 12.12: resuming training ---------------------------------------------------------------------


def _run(trainer, batches):
    return [trainer.step(b).loss for b in batches]


def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    batches = _batches(10)
    full = pl.Trainer(_pipeline(), _optimizer(), seed=3)
    full_losses = _run(full, batches)

    first = pl.Trainer(_pipeline(), _optimizer(), seed=3)
    losses = _run(first, batches[:4])
    first.save(tmp_path / "ckpt")
    resumed = pl.Trainer.load(tmp_path / "ckpt", _optimizer())
    assert resumed.ts.step == 4 and resumed.ts.seed == 3 and resumed.pipeline.steps_done == 4
    losses += _run(resumed, batches[4:])

    assert losses == full_losses
    _assert_identical(resumed.ts.params, full.ts.params)
    _assert_identical(resumed.ts.opt_state, full.ts.opt_state)
    _assert_identical(resumed.ts.state, full.ts.state)
    _assert_identical(resumed.pipeline.params, full.pipeline.params)


def test_pl_load_of_a_training_checkpoint_gives_the_pipeline(tmp_path):
    trainer = pl.Trainer(_pipeline(), _optimizer())
    _run(trainer, _batches(2))
    trainer.save(tmp_path / "t")
    again = pl.load(tmp_path / "t")
    _assert_identical(again.params, trainer.pipeline.params)
    assert again.steps_done == 2


def test_resuming_needs_the_training_state_and_the_same_optimizer(tmp_path):
    pipe = _pipeline()
    pipe.save(tmp_path / "plain")
    with pytest.raises(SerializationError, match="without its training state.*Trainer.save"):
        pl.Trainer.load(tmp_path / "plain", _optimizer())
    trainer = pl.Trainer(_pipeline(), _optimizer())
    trainer.step(_batches(1)[0])
    trainer.save(tmp_path / "t")
    with pytest.raises(SerializationError, match="optimizer the one"):
        pl.Trainer.load(tmp_path / "t", optim.sgd(0.1))


_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path[:0] = [{tests!r}, {shared!r}]
    from test_pipeline_files import _batches, _optimizer, _pipeline, _run
    from diffsys import pipeline as pl
    from safetensors.numpy import save_file
    import diffsys as ds

    what, path = sys.argv[1], sys.argv[2]
    batches = _batches(10)
    if what == "first":
        trainer = pl.Trainer(_pipeline(), _optimizer(), seed=3)
        _run(trainer, batches[:4])
        trainer.save(path)
    else:
        trainer = pl.Trainer.load(path, _optimizer())
        losses = _run(trainer, batches[4:])
        leaves = ds.tree_leaves((trainer.ts.params, trainer.ts.opt_state, trainer.ts.state))
        out = {{str(i): np.asarray(v) for i, v in enumerate(leaves)}}
        out["losses"] = np.array(losses)
        save_file(out, path + "/result.safetensors")
    """
)


def test_a_run_resumed_in_another_process_is_bit_identical(tmp_path):
    from safetensors.numpy import load_file

    script = tmp_path / "resume.py"
    here = Path(__file__).parent
    script.write_text(_SCRIPT.format(tests=str(here), shared=str(here.parent)))
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    ckpt = str(tmp_path / "ckpt")
    for what in ("first", "second"):
        subprocess.run([sys.executable, str(script), what, ckpt], check=True, env=env, timeout=300)
    result = load_file(ckpt + "/result.safetensors")

    batches = _batches(10)
    full = pl.Trainer(_pipeline(), _optimizer(), seed=3)
    full_losses = _run(full, batches)
    np.testing.assert_array_equal(result.pop("losses"), np.array(full_losses[4:]))
    leaves = ds.tree_leaves((full.ts.params, full.ts.opt_state, full.ts.state))
    assert len(result) == len(leaves)
    for i, v in enumerate(leaves):
        got = result[str(i)]
        assert got.dtype == np.asarray(v).dtype and np.array_equal(got, np.asarray(v)), i


# --- 12.9 / 12.11: files as untrusted input -------------------------------------------------------


def test_a_tensor_file_outside_the_folder_is_refused(tmp_path):
    make_classifier(seed=1).save(tmp_path / "victim")
    make_classifier(seed=0).save(tmp_path / "mine")
    victim = read_json(tmp_path / "victim" / "checkpoint.json")["tensors"]
    doc = read_json(tmp_path / "mine" / "checkpoint.json")
    for target in (f"../victim/{victim['file']}", str(tmp_path / "victim" / victim["file"])):
        doc["tensors"] = {**victim, "file": target}
        _resign(tmp_path / "mine" / "checkpoint.json", doc)
        with pytest.raises(SerializationError, match=r"'tensors\.file'.*plain file name"):
            pl.load(tmp_path / "mine")


def _free_form(path):
    if path[0] == "metadata" and len(path) > 1:
        return True
    # a module's static fields are its own configuration: plain JSON scalars of any value
    # (tagged ones -- dtypes, functions, arrays -- are checked)
    if "static" in path:
        i = path.index("static")
        return len(path) == i + 2 or path[-1] in ("tuple", "list")
    return False


def test_every_field_of_a_saved_pipeline_is_checked_and_named(tmp_path):
    """The class test for saved pipelines: each field of checkpoint.json in turn (the
    pipeline's config included) gets a value of another type or is deleted, the file is
    re-signed, and pl.load must raise SerializationError naming that field."""
    trainer = pl.Trainer(_pipeline(), _optimizer())
    trainer.step(_batches(1)[0])
    trainer.save(tmp_path)
    index = tmp_path / "checkpoint.json"
    doc = read_json(index)
    cases = corruptions(
        doc,
        skip=_free_form,
        optional=lambda p: (p[0] == "rng" and len(p) == 2) or p[:2] == ("config", "state"),
    )
    assert len(cases) > 200
    wrong = check_all(
        cases,
        index,
        load=lambda: pl.Trainer.load(tmp_path, _optimizer()),
        error=SerializationError,
        write=_resign,
    )
    write_json(index, doc)
    pl.Trainer.load(tmp_path, _optimizer())  # the original still loads
    assert not wrong, f"{len(wrong)} of {len(cases)}:\n" + "\n".join(wrong[:25])


@pytest.mark.parametrize(
    "shape, match",
    [
        ([10**9, 10**9], r"'config\.stages\[0\]\.module\.children\.weight\.array'.*elements"),
        ([10**15], r"'config\.stages\[0\]\.module\.children\.weight\.array'.*elements"),
        ([10**12], r"params\.enc\.weight.*\[8, 4\].*\[1000000000000\]"),
        ([4, 9], r"params\.enc\.weight.*\[8, 4\].*\[4, 9\]"),
        ([1e3, 2], r"'config\.stages\[0\]\.module\.children\.weight\.array\[0\]'"),
    ],
)
def test_hostile_template_shapes_allocate_nothing(tmp_path, shape, match):
    _pipeline().save(tmp_path)
    doc = read_json(tmp_path / "checkpoint.json")
    doc["config"]["stages"][0]["module"]["children"]["weight"]["array"] = shape
    _resign(tmp_path / "checkpoint.json", doc)
    with pytest.raises(SerializationError, match=match):
        pl.load(tmp_path)


def test_unknown_schedule_arguments_fail_at_load(tmp_path):
    _pipeline().save(tmp_path)
    doc = read_json(tmp_path / "checkpoint.json")
    doc["config"]["losses"][1]["weight"]["kwargs"]["bogus"] = 1
    _resign(tmp_path / "checkpoint.json", doc)
    with pytest.raises(SerializationError, match=r"'config\.losses\[1\]\.weight\.kwargs\.bogus'"):
        pl.load(tmp_path)
