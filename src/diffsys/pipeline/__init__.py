"""Differentiable pipelines (``diffsys.pipeline``): stage contracts, composition, attached
losses, train/infer relaxation with measured mismatch, per-stage gradient telemetry.

Usage (the whole API in one sample; docs/pipeline.md is the guide)::

    import numpy as np, diffsys as ds
    from diffsys import nn, optim, pipeline as pl

    # A stage is a named nn.Module or function with a contract. Modules that have methods
    # relaxed(self, x) and hard(self, x) are *relaxed* stages: relaxed in training (their
    # __call__), hard at inference. Plain modules and functions are exact stages.
    pipe = pl.Pipeline(
        [
            pl.Stage("blur", blur_module, input_spec=pl.Spec(("B", 1, 8, 8), "float64")),
            pl.Stage("threshold", threshold_module),           # reads "blur" (the previous)
            pl.Stage("encoder", cnn, output_spec=("B", 32)),
            pl.Stage("classifier", nn.Linear(32, 10, key=0)),
            # DAG: pl.Stage("fuse", fn, inputs=("encoder", "blur")) reads two outputs
        ],
        batch_keys=("x", "y"),                 # batch = {"x": ..., "y": ...} or (x, y)
        losses=[pl.Loss("ce", nn.cross_entropy, inputs=("classifier", "y"))],
        metrics=[pl.Metric("accuracy", pl.accuracy, inputs=("classifier", "y"))],
    )
    pipe.add_loss("aux", aux_fn, inputs=("encoder", "y"),
                  weight=pl.scheduled("linear", init_value=1.0, end_value=0.0,
                                      transition_steps=200))  # or any step -> weight callable
    pipe.freeze("blur")                        # no gradient to its parameters (unfreeze too)
    # pl.Stage(..., checkpoint=True) recomputes a stage in the backward pass (ds.checkpoint);
    # a stage (or a relaxed module's relaxed/hard) with a named key= argument gets an int
    # seed derived from the call's key (pipe.apply(..., key=0); pipe.step: from its seed)
    pipe.params                                # {"blur": module, "encoder": ..., ...}
    pipe.named_parameters()                    # ("encoder.layers.0.weight", array), ...

    # Training with telemetry: the stateful helper ...
    trainer = pl.Trainer(pipe, optim.adam(1e-2), seed=0)
    report = trainer.step(batch)               # StepReport: .loss .terms .weights .metrics
    report.grad_norms["blur"]                  #   .grad_norms .output_grad_norms
    report.update_ratios["encoder"]            #   .param_norms .update_ratios .warnings
    print(pipe.telemetry.table(last=10))       # per-stage table; history in
    pipe.telemetry.to_json("h.json"); pipe.telemetry.to_csv("h.csv"); pipe.telemetry.plot("h.png")
    pipe.telemetry.series("grad_norms", "blur")  # one column as an array over steps

    # ... or the functional step (pipe.params untouched) ...
    ts = pipe.init(optim.adam(1e-2), seed=0)   # TrainState(params, opt_state, state, step, ...)
    ts, report = pipe.step(ts, batch)

    # ... or the explicit loop, all yours:
    (loss, aux), grads = ds.value_and_grad(pipe.loss, has_aux=True)(params, batch, step=k)
    # aux = {"terms": {...}, "weights": {...}, "metrics": {...}, "state": new_state}

    # Modes and what the relaxation costs
    pipe.train(); pipe.infer()                 # in place: surrogate / hard op (nn train / eval)
    with pipe.inference(): ...                 # for a block, then the mode is restored
    logits = pipe(batch)                       # the last stage's output, current mode
    outputs, state = pipe.apply(params, batch, mode="infer")   # every stage's output
    print(pipe.mismatch(batch))                # MismatchReport: per relaxed stage the
                                               # distance relaxed vs hard, loss/metrics each way
    print(pipe.check_grads(batch))             # finite differences stage by stage
    pipe.save("ckpt"); pipe2 = pl.load("ckpt") # JSON config + safetensors, no pickle
    pl.register(MyModule)                      # custom stage types must be registered to load

Telemetry raises :class:`NonFiniteError` naming the stage where a NaN/Inf first appears
(forward output or gradient) and warns with :class:`StarvationWarning` naming a stage whose
gradient stays below a threshold (``pl.Telemetry(starvation_threshold=..,
starvation_steps=..)``). Contract violations raise :class:`ContractError` naming the stage.
"""

from .diagnostics import GradCheckReport, MismatchReport, check_grads, mismatch
from .losses import Loss, Metric, Scheduled, accuracy, scheduled
from .per_stage import per_stage, scale_stages
from .pipeline import (
    HardModeGradientWarning,
    Pipeline,
    TrainState,
    combine_trainable,
    split_trainable,
)
from .serialize import SerializationError, load, register, registered, save
from .spec import ContractError, Spec
from .stage import KINDS, Stage
from .telemetry import Monitor, NonFiniteError, StarvationWarning, StepReport, Telemetry
from .trainer import Trainer

__all__ = [
    "KINDS",
    "ContractError",
    "GradCheckReport",
    "HardModeGradientWarning",
    "Loss",
    "Metric",
    "MismatchReport",
    "Monitor",
    "NonFiniteError",
    "Pipeline",
    "Scheduled",
    "SerializationError",
    "Spec",
    "Stage",
    "StarvationWarning",
    "StepReport",
    "Telemetry",
    "TrainState",
    "Trainer",
    "accuracy",
    "check_grads",
    "combine_trainable",
    "load",
    "mismatch",
    "per_stage",
    "register",
    "registered",
    "save",
    "scale_stages",
    "scheduled",
    "split_trainable",
]
