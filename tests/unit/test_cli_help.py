"""Every command's --help renders with the installed typer and rich (help text is rich markup: a stray
``[/KEY]`` once made ``compare --help`` end in a traceback)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from edgecc.cli import app


def _commands(group, prefix: list[str]) -> list[list[str]]:  # noqa: ANN001 - typer's command group
    found = []
    for name, cmd in group.commands.items():
        found.append(prefix + [name])
        if hasattr(cmd, "commands"):
            found += _commands(cmd, prefix + [name])
    return found


def test_every_help_renders():
    commands = _commands(typer.main.get_command(app), [])
    assert len(commands) >= 15 and ["compare"] in commands and ["zoo", "export"] in commands
    for cmd in [[]] + commands:
        r = CliRunner().invoke(app, cmd + ["--help"])
        assert r.exit_code == 0 and "Traceback" not in r.output, (cmd, r.output[-500:])
        assert "Usage:" in r.output, cmd
    r = CliRunner().invoke(app, ["profile", "--help"], terminal_width=200)
    assert "rpc://HOST:PORT[/KEY]" in " ".join(r.output.split())
