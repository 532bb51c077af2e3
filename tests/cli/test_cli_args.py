"""The ``diffsys`` command line: parsing, help, errors, ``python -m diffsys``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffsys.cli import build_parser, main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "diffsys", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_demo_defaults():
    args = build_parser().parse_args(["demo"])
    assert (args.seed, args.epochs, args.noise, args.out, args.quick) == (
        0,
        None,
        0.5,
        "diffsys-demo-report",
        False,
    )
    assert args.progress == "auto" and not args.synthetic and not args.no_plots


def test_demo_options():
    args = build_parser().parse_args(
        [
            "demo",
            "--seed",
            "3",
            "--epochs",
            "7",
            "--noise",
            "0.25",
            "--out",
            "r",
            "--quick",
            "--progress",
            "plain",
            "--synthetic",
            "--no-plots",
        ]
    )
    assert (args.seed, args.epochs, args.noise, args.out, args.quick) == (3, 7, 0.25, "r", True)
    assert args.progress == "plain" and args.synthetic and args.no_plots


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--epochs", "0"], "--epochs: must be at least 1"),
        (["demo", "--epochs", "two"], "--epochs: expected a whole number"),
        (["demo", "--noise", "-1"], "--noise: must be a finite number >= 0"),
        (["demo", "--noise", "nan"], "--noise: must be a finite number >= 0"),
        (["demo", "--progress", "fancy"], "--progress: invalid choice"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["train"], "invalid choice: 'train'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: diffsys" in out and "demo" in out


def test_version(capsys):
    import diffsys

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"diffsys {diffsys.__version__}"


def test_python_dash_m_diffsys_help():
    proc = run_module("--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: diffsys" in proc.stdout and "demo" in proc.stdout
    proc = run_module("demo", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--seed", "--epochs", "--out", "--quick", "--noise"):
        assert option in proc.stdout


def test_installed_console_script():
    beside = Path(sys.executable).with_name("diffsys")  # a virtualenv that is not activated
    exe = str(beside) if beside.exists() else shutil.which("diffsys")
    if exe is None:
        pytest.skip("the diffsys console script is not installed (pip install -e .)")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "demo" in proc.stdout


@pytest.mark.parametrize("name", ["diffsys.cli", "diffsys.cli.demo", "diffsys.cli.data"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
