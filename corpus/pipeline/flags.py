"""Beam's command-line flags, checked before a build starts: a flag that no `PipelineOptions`
class defines is an error naming it and the nearest known flag. Left to Beam, it would be
dropped with a "Discarding unparseable args" warning and the build would run with settings
nobody asked for (`--direct_num_worker=2`).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser


class FlagError(ValueError):
    """A command-line flag that neither the build nor Beam knows, or a bad `--set`."""


def beam_argument_parser() -> argparse.ArgumentParser:
    """Every flag Beam's `PipelineOptions` classes define, parsed as Beam parses them."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    classes: dict[str, type] = {}
    pending = list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        classes.setdefault(str(cls), cls)
        pending += cls.__subclasses__()
    for cls in classes.values():
        cls._add_argparse_args(parser)  # as PipelineOptions.get_all_options does
    return parser


def flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [name for name in parser._option_string_actions if name.startswith("--")]


def check_beam_flags(beam_args: list[str], own_flags: Sequence[str] = ()) -> None:
    """Raise FlagError for each argument that Beam does not know, with the nearest known flag
    (of Beam's and `own_flags`, the flags of the command that took its own out already)."""
    beam = beam_argument_parser()
    _, unknown = beam.parse_known_args(beam_args)
    if not unknown:
        return
    known = list(own_flags) + flag_names(beam)
    problems = []
    for arg in unknown:
        if not arg.startswith("-"):
            problems.append(f"unexpected argument {arg!r} (one config file at most; flags take --flag=value or --flag value)")
            continue
        name = arg.split("=", 1)[0]
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else "; see `bee corpus build --help`"
        problems.append(f"unknown flag {name}: neither the build nor Apache Beam knows it{hint}")
    raise FlagError("\n".join(problems))
