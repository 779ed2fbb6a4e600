"""The command line a stranger meets first: every subcommand and argument says what it is for, every
subcommand shows examples, and the installed ``sluice`` script and ``python -m sluice`` answer without
PYTHONPATH from any directory."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.apps import cli

pytestmark = pytest.mark.unit

VENV_BIN = Path(sys.executable).parent


class _Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _parser(monkeypatch) -> argparse.ArgumentParser:
    """The parser ``main`` builds, caught where it would parse."""

    def capture(self, *args, **kwargs):
        raise _Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Built) as built:
        cli.main([])
    return built.value.parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_and_argument_has_help_and_examples(monkeypatch) -> None:
    parser = _parser(monkeypatch)
    assert parser.epilog and parser.epilog.startswith("examples:")
    subs = _subparsers(parser)
    assert {"config", "suite", "generate", "demo", "models", "drift", "replay"} <= set(subs)
    lacking = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, sub in subs.items()
        for a in sub._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()
    ]
    assert not lacking, f"arguments without help text: {lacking}"
    no_examples = [name for name, sub in subs.items() if not (sub.epilog or "").startswith("examples:")]
    assert not no_examples, f"subcommands without examples: {no_examples}"
    no_description = [name for name, sub in subs.items() if not sub.description]
    assert not no_description, f"subcommands without a description: {no_description}"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SLUICE_MODELS_DIR")}


@pytest.mark.parametrize(
    ("argv", "prog"),
    [([str(VENV_BIN / "sluice")], "sluice"), ([str(VENV_BIN / "python"), "-m", "sluice"], "python -m sluice")],
    ids=["console-script", "python-m"],
)
def test_installed_entry_points_answer_without_pythonpath(tmp_path, argv, prog) -> None:
    if not Path(argv[0]).exists():
        pytest.fail(f"{argv[0]} is missing: `make venv` installs Sluice editable with its console script")
    out = subprocess.run(
        [*argv, "suite", "--help"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {prog} suite"), out.stdout
    assert "--from YYYY-MM-DD" in out.stdout and "examples:" in out.stdout
