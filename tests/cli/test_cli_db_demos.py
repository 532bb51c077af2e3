"""``diffsys demo retrieval`` and ``diffsys demo aggregate`` (quick runs): they learn, the
learned query runs in DuckDB with the NumPy hard result's rows, and the report is written."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("duckdb")

from diffsys.cli import build_parser, main  # noqa: E402


def test_demo_names_parse_and_the_bare_demo_is_unchanged():
    assert build_parser().parse_args(["demo"]).name is None
    args = build_parser().parse_args(["demo", "retrieval", "--quick", "--seed", "3"])
    assert (args.name, args.quick, args.seed) == ("retrieval", True, 3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "nope"])


def test_retrieval_demo_quick(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r"
    assert main(["demo", "retrieval", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    scores = summary["ndcg_at_10"]
    assert scores["learned"] > scores["before training"] + 0.2
    duck = summary["duckdb"]
    held_out = summary["queries"]["held_out"]
    assert duck["identical_to_numpy"] == f"{held_out}/{held_out}"
    assert duck["ndcg_at_10"] == pytest.approx(scores["learned"], abs=1e-12)
    assert {"loss.png", "ndcg.png", "weights.png", "query.json"} <= set(summary["files"])
    assert all((out / f).stat().st_size > 0 for f in summary["files"])
    assert "ORDER BY score DESC" in capsys.readouterr().out


def test_aggregate_demo_quick(tmp_path):
    out = tmp_path / "a"
    assert main(["demo", "aggregate", "--quick", "--no-plots", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    err = summary["max_relative_error"]
    assert err["learned"] < 0.5 * err["start"]
    assert summary["duckdb_equals_numpy"] is True
    assert summary["loss"]["last"] < 0.1 * summary["loss"]["first"]
    assert not any(f.endswith(".png") for f in summary["files"])


def test_search_demo_quick(tmp_path):
    out = tmp_path / "s"
    assert main(["demo", "search", "--quick", "--no-plots", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    acc = summary["accuracy"]
    assert acc["end to end"] > acc["untrained encoders"] + 0.1
    stale = summary["staleness"]
    assert stale["1"]["max_staleness"] < 1e-12
    assert stale["40"]["mean_staleness"] > stale["10"]["mean_staleness"] > 0
    assert summary["duckdb_topk_equals_numpy"] == "20/20"
