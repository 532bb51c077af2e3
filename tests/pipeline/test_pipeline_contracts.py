"""Stage contracts: shape and dtype specs with symbolic dimensions bound across stages, and
the errors that name the stage, the expected spec and the actual value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline_helpers import Scale

import diffsys as ds
import diffsys.numpy as dnp
from diffsys import nn
from diffsys import pipeline as pl
from diffsys.pipeline import ContractError, Spec


def test_spec_accepts_matching_arrays_and_binds_symbols():
    b = {}
    Spec(("B", 3), "float64").check(np.zeros((4, 3)), b, "here")
    Spec(("B", None), "floating").check(np.zeros((4, 7), np.float32), b, "there")
    Spec((..., 3)).check(np.zeros((2, 5, 3)), b, "x")
    Spec(("B", ...)).check(np.zeros((4,)), b, "y")
    assert b == {"B": (4, "here")}


@pytest.mark.parametrize(
    "spec, value, message",
    [
        (
            Spec(("B", 3)),
            np.zeros((4, 2)),
            r"here: expected shape \('B', 3\), got \(4, 2\): axis 1 "
            r"is 2, expected 3",
        ),
        (Spec(("B", 3)), np.zeros(3), r"here: expected shape \('B', 3\) \(2 axes\), got \(3,\)"),
        (Spec((..., 3, 3)), np.zeros(3), r"at least 2 axes\), got \(3,\)"),
        (Spec(None, "float32"), np.zeros(2), r"here: expected dtype float32, got float64"),
        (Spec(None, "integer"), np.zeros(2), r"expected dtype integer, got float64"),
        (
            Spec(("B",)),
            [1.0, 2.0],
            r"here: expected an array Spec\(\('B',\)\), got a list "
            r"\(length 2\)",
        ),
        (Spec(("B",)), None, r"got a NoneType"),
    ],
)
def test_spec_errors_say_what_where_and_the_actual_value(spec, value, message):
    with pytest.raises(ContractError, match=message):
        spec.check(value, {}, "here")


def test_spec_rejects_bad_declarations():
    with pytest.raises(TypeError, match="shape entries"):
        Spec((1.5,))
    with pytest.raises(TypeError, match="at most one"):
        Spec((..., 1, ...))
    with pytest.raises(TypeError, match="not understood|data type"):
        Spec((1,), "no-such-dtype")


def _two_stage(in_spec, out_spec, second_in=None, fn2=dnp.sin):
    return pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(4, 2, key=0), input_spec=in_spec, output_spec=out_spec),
            pl.Stage("post", fn2, input_spec=second_in),
        ]
    )


def test_input_shape_violation_names_stage_input_and_shapes():
    pipe = _two_stage(("B", 4), ("B", 2))
    with pytest.raises(
        ContractError,
        match=r"stage 'enc' input 0 \('x'\): expected shape "
        r"\('B', 4\), got \(5, 3\): axis 1 is 3",
    ):
        pipe({"x": np.zeros((5, 3))})


def test_symbolic_batch_dimension_must_agree_across_stages():
    def grow(y):
        return dnp.concatenate([y, y], axis=0)

    pipe = pl.Pipeline(
        [
            pl.Stage("enc", nn.Linear(4, 2, key=0), input_spec=("B", 4)),
            pl.Stage("grow", grow, output_spec=("B", 2)),
        ]
    )
    with pytest.raises(
        ContractError,
        match=r"stage 'grow' output: symbolic dimension 'B' is 10 "
        r"here .*but stage 'enc' input 0 \('x'\) bound it to 5",
    ):
        pipe({"x": np.zeros((5, 4))})


def test_dtype_violation_names_stage_and_dtypes():
    pipe = _two_stage(Spec(("B", 4), "float32"), None)
    with pytest.raises(
        ContractError,
        match=r"stage 'enc' input 0 \('x'\): expected dtype "
        r"float32, got float64 \(shape \(5, 4\)",
    ):
        pipe({"x": np.zeros((5, 4))})


def test_output_spec_violation_names_the_stage():
    pipe = _two_stage(None, ("B", 3))
    with pytest.raises(
        ContractError,
        match=r"stage 'enc' output: expected shape \('B', 3\), got "
        r"\(5, 2\)",
    ):
        pipe({"x": np.zeros((5, 4))})


def test_non_array_output_where_an_array_was_declared():
    pipe = pl.Pipeline([pl.Stage("bad", lambda x: [x, x], output_spec=("B",))])
    with pytest.raises(
        ContractError,
        match=r"stage 'bad' output: expected an array "
        r"Spec\(\('B',\)\), got a list \(length 2\)",
    ):
        pipe({"x": np.zeros(3)})


def test_structured_output_spec_mismatch():
    pipe = pl.Pipeline([pl.Stage("two", lambda x: (x, x), output_spec=[("B",), ("B",), ("B",)])])
    with pytest.raises(
        ContractError,
        match=r"stage 'two' output: expected a sequence of 3 "
        r"outputs .* got a tuple of length 2",
    ):
        pipe({"x": np.zeros(3)})
    pipe = pl.Pipeline([pl.Stage("d", lambda x: {"a": x}, output_spec={"a": ("B",), "b": None})])
    with pytest.raises(ContractError, match=r"expected a dict with keys \['a', 'b'\], got \['a'\]"):
        pipe({"x": np.zeros(3)})


@pytest.mark.parametrize(
    ("fn", "got", "fix"),
    [
        (lambda z: [z, z], "a list of length 2", r"output_spec=\(None, None\)"),
        (lambda z: (z, z * 2), "a tuple of length 2", r"output_spec=\(None, None\)"),
        (lambda z: {"u": z}, "a dict of length 1", r"output_spec=\{'u': None\}"),
        (lambda z: None, "None", "return its result"),
        (lambda z: 1.5, "a float", r"np.asarray"),
        (lambda z: "z", "a str", r"np.asarray"),
    ],
)
def test_undeclared_non_array_output_is_an_error_naming_the_stage(fn, got, fix):
    # A list used to be stacked silently by the next stage (tanh gave shape (2, 4, 3)) and
    # None blamed on the next stage: the stage that returned it is named, in every mode.
    pipe = pl.Pipeline(
        [pl.Stage("a", fn), pl.Stage("act", nn.tanh)], losses=[pl.Loss("l", dnp.sum, "act")]
    )
    message = rf"stage 'a' \(<lambda>\) returned {got}, not an array.*{fix}"
    batch = {"x": np.ones((4, 3))}
    with pytest.raises(ContractError, match=message):
        pipe(batch)
    with pytest.raises(ContractError, match=message):
        pipe(batch, mode="infer")
    with pytest.raises(ContractError, match=message):
        ds.grad(lambda p: pipe.loss(p, batch)[0])(pipe.params)


def test_declared_tuple_and_dict_outputs_are_read_by_entry():
    pipe = pl.Pipeline(
        [
            pl.Stage("pair", lambda z: [z, 2 * z], output_spec=(None, None)),
            pl.Stage("named", lambda z: {"u": z + 1}, inputs="x", output_spec={"u": None}),
            pl.Stage("sum", lambda a, b, c: a + b + c, inputs=("pair.0", "pair.1", "named.u")),
        ]
    )
    np.testing.assert_allclose(pipe({"x": np.arange(3.0)}), 4 * np.arange(3.0) + 1)
    bad = pl.Pipeline([pl.Stage("pair", lambda z: (z, None), output_spec=(None, None))])
    with pytest.raises(
        ContractError,
        match=r"stage 'pair' output \[1\]: expected an array, got a NoneType",
    ):
        bad({"x": np.ones(2)})
    bad = pl.Pipeline([pl.Stage("named", lambda z: {"u": [z]}, output_spec={"u": None})])
    with pytest.raises(
        ContractError, match=r"stage 'named' output \['u'\]: expected an array, got a list"
    ):
        bad({"x": np.ones(2)})


def test_multi_input_specs_by_name_and_by_position():
    pipe = pl.Pipeline(
        [
            pl.Stage("a", Scale(), input_spec=("B", 2)),
            pl.Stage(
                "sum",
                lambda u, v: u + v,
                inputs=("a", "x"),
                input_spec={"a": ("B", 2), "x": Spec(("B", 2), "float64")},
            ),
        ]
    )
    assert pipe({"x": np.ones((3, 2))}).shape == (3, 2)
    with pytest.raises(
        ValueError,
        match=r"it has 2 inputs \['a', 'x'\]; give input_spec as a "
        r"list of 2",
    ):
        pl.Stage("sum", lambda u, v: u + v, inputs=("a", "x"), input_spec=("B", 2))
    with pytest.raises(ValueError, match=r"input_spec names \['z'\]"):
        pl.Stage("sum", lambda u, v: u + v, inputs=("a", "x"), input_spec={"z": ("B",)})


def test_contracts_are_checked_under_differentiation_too():
    pipe = pl.Pipeline(
        [pl.Stage("enc", nn.Linear(4, 2, key=0), output_spec=("B", 3))],
        losses=[pl.Loss("l", dnp.sum, "enc")],
    )
    with pytest.raises(ContractError, match="stage 'enc' output"):
        ds.grad(lambda p: pipe.loss(p, {"x": np.zeros((2, 4))})[0])(pipe.params)


def test_stage_that_mutates_its_input_is_named():
    def clobber(x):
        x[0] = 0.0
        return x * 2

    pipe = pl.Pipeline([pl.Stage("pre", Scale()), pl.Stage("clobber", clobber)])
    x = np.ones(3)
    with pytest.raises(
        ContractError,
        match=r"stage 'clobber' modified its input in place .*"
        r"\['pre'\]",
    ):
        pipe({"x": x})
    pipe2 = pl.Pipeline([pl.Stage("clobber", clobber)])
    with pytest.raises(ContractError, match=r"stage 'clobber' modified its input .*\['x'\]"):
        pipe2({"x": x})
    assert x.flags.writeable and np.all(x == 1.0)  # restored and untouched


def test_in_place_ufunc_into_the_input_is_caught():
    def addone(x):
        np.add(x, 1.0, out=x)
        return x

    pipe = pl.Pipeline([pl.Stage("inplace", addone)])
    with pytest.raises(ContractError, match="stage 'inplace' modified its input in place"):
        pipe({"x": np.zeros(2)})


def test_stage_returning_a_view_of_its_input_gives_a_writable_array():
    pipe = pl.Pipeline([pl.Stage("view", lambda x: x.reshape(2, 2))])
    out = pipe({"x": np.arange(4.0)})
    out[0, 0] = 5.0  # the guard did not leave it read-only


def test_exceptions_inside_a_stage_carry_its_name():
    def broken(x):
        raise RuntimeError("boom")

    pipe = pl.Pipeline([pl.Stage("ok", Scale()), pl.Stage("broken", broken)])
    with pytest.raises(RuntimeError, match="boom") as info:
        pipe({"x": np.ones(2)})
    assert any("pipeline stage 'broken'" in n for n in info.value.__notes__)


def test_missing_batch_entry_is_named():
    pipe = pl.Pipeline([pl.Stage("s", Scale())], losses=[pl.Loss("l", nn.mse, ("s", "y"))])
    with pytest.raises(
        KeyError,
        match=r"loss term 'l' reads batch entry 'y', but the batch has "
        r"keys \['x'\]",
    ):
        pipe.loss(None, {"x": np.ones(2)})


@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
    kinds=st.lists(st.sampled_from(["int", "sym", "none"]), min_size=4, max_size=4),
    data=st.data(),
)
def test_spec_accepts_exactly_the_shapes_it_describes(shape, kinds, data):
    spec_shape = []
    for i, d in enumerate(shape):
        spec_shape.append({"int": d, "sym": f"S{i}", "none": None}[kinds[i]])
    spec = Spec(tuple(spec_shape))
    spec.check(np.zeros(shape), {}, "x")  # its own shape always fits
    if shape:
        axis = data.draw(st.integers(0, len(shape) - 1))
        other = list(shape)
        other[axis] += 1
        if kinds[axis] == "int":  # a fixed size: any other size is an error naming the axis
            with pytest.raises(ContractError, match=f"axis {axis} is {other[axis]}"):
                spec.check(np.zeros(other), {}, "x")
        else:  # a symbol or None: any size, but a bound symbol must agree
            spec.check(np.zeros(other), {}, "x")
            if kinds[axis] == "sym":
                with pytest.raises(ContractError, match=f"'S{axis}' is {other[axis]}"):
                    spec.check(np.zeros(other), {f"S{axis}": (shape[axis], "before")}, "x")
    with pytest.raises(ContractError, match="axes"):
        spec.check(np.zeros(tuple(shape) + (1,)), {}, "x")
