"""The guide runners check what each sample prints against the guide's ```output block
(tests/doc_samples.py, shared with .ci/check_docs.py): a guide that drifts from the code
fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from doc_samples import DOCS, Guide, compare_output

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "shown, printed",
    [
        ("[[2. 1. 4. 3.]]", "[[2. 1. 4. 3.]]\n"),
        ("[0.1 -0.2]", "[ 0.10000001 -0.2       ]"),  # alignment and digits past the tolerance
        ("[0.1 0.2\n 0.3]", "[0.1 0.2 0.3]"),  # NumPy's line wrapping
        ("4 3636", "4 3636"),
        ("residual 1.2e-10", "residual 3.4e-11"),  # below ATOL: noise of the solver
        ("recorded at ...:6, in loss", "recorded at /home/u/x.py:6, in loss"),
        (
            "epoch 1 (... s)\n...\nepoch 3 (... s)",
            "epoch 1 (0.1 s)\nepoch 2 (0.1 s)\nepoch 3 (0.2 s)",
        ),
        ("nan", "nan"),
    ],
)
def test_matching_outputs(shown, printed):
    assert compare_output(shown, printed) is None


@pytest.mark.parametrize(
    "shown, printed, says",
    [
        ("[0.1 -0.2]", "[0.1001 -0.2]", "shows 0.1 where the block printed 0.1001"),
        ("4 3636", "4 3637", "shows 3636 where the block printed 3637"),  # integers: exact
        ("2", "2.5", "shows 2 where the block printed 2.5"),
        ("[1. 2.]", "[12.]", "shows 1. where the block printed 12."),
        ("True False", "TrueFalse", "differs"),
        ("float64", "float32", "differs"),
        ("loss 0.5\naccuracy 0.9", "loss 0.5", "differs"),
        ("epoch 1 ...\nepoch 3", "epoch 1\nepoch 2", "differs"),
    ],
)
def test_differing_outputs(shown, printed, says):
    problem = compare_output(shown, printed)
    assert problem is not None and says in problem


def _guide(tmp_path, text: str) -> Guide:
    path = tmp_path / "guide.md"
    path.write_text(text)
    return Guide(str(path))


def test_a_guide_states_what_its_blocks_print(tmp_path):
    ok = "```python\nprint(1.5 * 2)\n```\n\n```output\n3.0\n```\n"
    _guide(tmp_path, ok).run()
    drifted = _guide(tmp_path, ok.replace("3.0", "3.1"))
    with pytest.raises(AssertionError, match="shows 3.1 where the block printed 3.0"):
        drifted.run()
    silent = _guide(tmp_path, "```python\nprint('hi')\n```\n")
    with pytest.raises(AssertionError, match="shows no ```output block after it"):
        silent.run()
    _guide(tmp_path, "```python\nx = 1\n```\n").run()  # prints nothing, shows nothing
    with pytest.raises(ValueError, match="must follow a ```python block"):
        _guide(tmp_path, "```python\nx = 1\n```\n\ntext\n\n```output\n1\n```\n")


def test_a_real_guide_with_a_drifted_value_fails(tmp_path):
    text = (DOCS / "relax.md").read_text()
    assert "[[2.495 1.    4.    2.505]]" in text
    drifted = _guide(tmp_path, text.replace("[[2.495 1.    4.    2.505]]", "[[2.49 1. 4. 2.51]]"))
    with pytest.raises(AssertionError, match="shows 2.49 where the block printed 2.495"):
        drifted.run_block(0)


def test_check_docs_compares_outputs_too(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("check_docs", ROOT / ".ci" / "check_docs.py")
    check_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_docs)
    good = tmp_path / "good.md"
    good.write_text("```python\nprint(sum([1, 2]))\n```\n\n```output\n3\n```\n")
    bad = tmp_path / "bad.md"
    bad.write_text("```python\nprint(sum([1, 2]))\n```\n\n```output\n4\n```\n")
    assert check_docs.main([str(good)]) == 0
    assert check_docs.main([str(bad)]) == 1
    assert "shows 4 where the block printed 3" in capsys.readouterr().err
