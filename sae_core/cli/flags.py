"""The command line's shared pieces: a parser that raises instead of exiting, and one flag per config field.

`sae train` and `sae sweep` both take every config field as `--field-name VALUE`; the flags, their help and
their choices are read from the config (its fields' types and docstrings) and the variants' specs.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from sae_core.config.run import FIELD_DOCS, FIELD_SECTION, RunConfig, field_choices, field_type
from sae_core.models import REGISTRY


class UsageError(Exception):
    """A mistake in the command line; printed as one line."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so main() controls the output."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One `--field-name VALUE` per config field; absent flags keep the config's defaults."""
    defaults = RunConfig().flat()
    groups = {s: parser.add_argument_group(f"{s} options") for s in dict.fromkeys(FIELD_SECTION.values())}
    for name, section in FIELD_SECTION.items():
        choices = _choices(name)
        hint = str(field_type(name))
        metavar = (
            "{" + ",".join(choices) + "}" if choices else ("N,N,..." if hint.startswith("tuple") else None)
        )
        default = defaults[name]
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        groups[section].add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=metavar or name.upper(),
            nargs="?" if hint.startswith("bool") else None,
            const="true" if hint.startswith("bool") else None,
            help=_flag_help(name, shown),
        )


def _flag_help(name: str, default: Any) -> str:
    doc = FIELD_DOCS.get(name, "")
    text = doc if "(default:" in doc else f"{doc} (default: {default})"
    owners = [s.name for s in REGISTRY.values() if name in s.fields]
    if name == "variant":  # each variant's one-line note, from its spec
        text += "".join(f" {s.name}: {s.note}" for s in REGISTRY.values())
    elif owners and name not in ("k",):
        text += f" [{', '.join(owners)} only]"
    return text.replace("%", "%%")  # argparse formats help with %


def _choices(name: str) -> tuple[str, ...]:
    return tuple(map(str, field_choices(name)))


def given_fields(args: argparse.Namespace) -> set[str]:
    """The config fields whose flags were given (absent ones are not set on args: default SUPPRESS)."""
    return {name for name in FIELD_SECTION if hasattr(args, name)}


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> RunConfig:
    """The RunConfig the flags describe (coerced and validated by the config itself), on top of the flat
    settings `base` (a preset's) where given; fields in neither take the config's defaults."""
    given = {name: getattr(args, name) for name in given_fields(args)}
    return RunConfig.from_flat({**(base or {}), **given})
