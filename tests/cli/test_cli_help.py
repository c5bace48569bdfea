"""Every ``wind`` command and subcommand answers ``--help`` with its usage."""

from __future__ import annotations

import argparse

import pytest

from wind_actors.cli.main import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, prefix + (name,))
    return found


COMMANDS = _commands(build_parser())


def test_the_cli_has_every_command_group_the_readme_names():
    groups = {c[0] for c in COMMANDS if c}
    assert {"keys", "node", "agent", "controller", "app", "sites"} <= groups
    assert {("app", "deploy"), ("app", "status"), ("app", "undeploy"), ("sites", "remove")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "wind")
def test_help_is_answered_with_usage_and_exit_code_zero(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: wind")


def test_no_command_prints_help_and_exits_two(capsys):
    assert main([]) == 2
    assert "usage: wind" in capsys.readouterr().out
