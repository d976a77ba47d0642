"""The `bee` command line: a help that imports nothing heavy and prints no warning, summaries
that are the commands' own, and a --help for every sub-command that lists its options."""

from __future__ import annotations

import subprocess
import sys

import click
import typer
from typer.testing import CliRunner

from flows.cli import LAZY_COMMANDS, _load_command, app

HEAVY_MODULES = ("apache_beam", "torch", "deepspeed", "prefect", "pyarrow", "polars")


def test_bee_help_imports_no_command_module_and_prints_no_warning():
    probe = ("import sys\nfrom flows.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print('LOADED', [m for m in {HEAVY_MODULES!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr and done.stderr == ""
    for name in LAZY_COMMANDS:
        assert name in done.stdout


def test_listed_summaries_are_the_commands_own_help():
    for name, (_, _, summary) in LAZY_COMMANDS.items():
        command = _load_command(name)
        assert command.get_short_help_str(limit=500) == summary, name


def _commands(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from _commands(command.get_command(click.Context(command), name), (*path, name))


def test_every_sub_command_help_lists_its_options():
    runner = CliRunner()
    root = typer.main.get_command(app)
    for name in LAZY_COMMANDS:  # the real commands, not the listing's stand-ins
        root.commands[name] = _load_command(name)
    for path, command in _commands(root):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        options = [opt for param in command.params if isinstance(param, click.Option) for opt in param.opts
                   if opt.startswith("--") and opt != "--help"]
        if path == ("corpus", "build"):  # argparse options, passed through to Beam otherwise
            options = ["--input", "--output", "--work-dir", "--dataset-name", "--task-name", "--manifest"]
        missing = [opt for opt in options if opt not in result.output]
        assert not missing, (path, missing, result.output)
