"""The documented command-line options and defaults agree with the argparse parser of ``cardiacseg.cli``.

Every page in ``docs/`` may hold an option table whose header is ``| `cardiacseg <command>` option |
default | meaning |``. For each command the parser has, exactly one such table must exist, list every
option of the parser and no other, and give each default as the parser has it:

- a backticked literal (`` `cpu` ``, `` `32` ``) equals the argparse default;
- ``required`` for positionals and required options; ``off`` for flags (``store_true``);
- any other text (prose) is allowed only where the argparse default is ``None`` (the value then comes from
  somewhere else, e.g. the bundle); ``the bundle's `key` (shipped: `value`)`` is checked against the
  shipped bundle's ``inference.json``;
- every choice of a ``choices`` option is named (backticked) in its row.

Prose claims are checked too: ``By default (`--option value```, ``--option value`` followed by
``(default``, and the ``--fast`` preset sentence of docs/inference.md against ``cli.FAST_PRESET``.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardiacseg import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
SHIPPED_INFERENCE = REPO / "cardiacseg" / "cardiac_cine_seg" / "configs" / "inference.json"

HEADER = re.compile(r"^\|\s*`cardiacseg ([\w-]+)` option\s*\|\s*default\s*\|")


@dataclass(frozen=True)
class Row:
    page: str
    command: str
    names: tuple[str, ...]  # option strings (``--output``, ``-o``) or the positional's metavar
    default: str
    meaning: str

    @property
    def text(self) -> str:
        return f"{self.page}: `cardiacseg {self.command}` {', '.join(self.names)}"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def documented_rows() -> dict[str, list[Row]]:
    """``{command: rows}`` of every option table in docs/*.md (one table per command)."""
    tables: dict[str, list[Row]] = {}
    for page in DOCS:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            match = HEADER.match(line)
            if not match:
                continue
            command = match.group(1)
            assert command not in tables, f"two option tables for `cardiacseg {command}`"
            rows = tables[command] = []
            for body in lines[i + 2 :]:
                if not body.startswith("|"):
                    break
                option, default, meaning = _cells(body)
                # "`--output`, `-o`" / "`INPUT ...`": the backticked words, without the "..." of nargs
                names = tuple(n.split()[0] for n in re.findall(r"`([^`]+)`", option))
                rows.append(Row(page.name, command, names, default, meaning))
    return tables


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _action_names(action: argparse.Action) -> tuple[str, ...]:
    if action.option_strings:
        return tuple(action.option_strings)
    return (action.metavar if isinstance(action.metavar, str) else action.dest,)


def _options(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], argparse.Action]:
    return {
        tuple(sorted(_action_names(a))): a for a in parser._actions if not isinstance(a, argparse._HelpAction)
    }


TABLES = documented_rows()
COMMANDS = subparsers()


def test_every_command_has_one_option_table() -> None:
    assert sorted(TABLES) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_documented_options_are_the_parsers(command: str) -> None:
    documented = {tuple(sorted(row.names)) for row in TABLES.get(command, [])}
    actual = set(_options(COMMANDS[command]))
    assert documented - actual == set(), f"documented but not in the parser of {command}"
    assert actual - documented == set(), f"in the parser of {command} but not documented"


def _shipped_inference() -> dict[str, object]:
    config: dict[str, object] = json.loads(SHIPPED_INFERENCE.read_text())
    return config


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_documented_defaults_are_the_parsers(command: str) -> None:
    actions = _options(COMMANDS[command])
    for row in TABLES.get(command, []):
        action = actions[tuple(sorted(row.names))]
        required = not action.option_strings or action.required
        literal = re.fullmatch(r"`([^`]*)`", row.default)
        if required:
            assert row.default == "required", row.text
        elif isinstance(action, argparse._StoreTrueAction):
            assert row.default == "off", row.text
        elif literal:
            assert literal.group(1) == str(action.default), (
                f"{row.text}: documented {row.default}, code {action.default!r}"
            )
        else:
            assert action.default is None, f"{row.text}: documented {row.default!r}, code {action.default!r}"
            assert not row.default.startswith("`"), f"{row.text}: a literal default must be the whole cell"
        for key, value in re.findall(r"the bundle's `(\w+)` \(shipped: `([^`]*)`\)", row.default):
            shipped = _shipped_inference()
            assert key in shipped, f"{row.text}: the shipped inference.json has no {key!r}"
            assert str(shipped[key]) == value, (
                f"{row.text}: shipped {key} is {shipped[key]!r}, documented {value}"
            )
        for choice in action.choices or ():
            assert f"`{choice}`" in row.default + row.meaning, f"{row.text}: choice {choice!r} not named"


def test_prose_defaults_agree_with_the_parser() -> None:
    """Prose names ``segment``'s defaults (the options the user guide discusses)."""
    defaults = {opt: a.default for a in COMMANDS["segment"]._actions for opt in a.option_strings}
    claims = []
    for page in DOCS:
        text = " ".join(page.read_text().split())  # sentences may wrap
        for pattern in (r"[Bb]y default \(`(--[\w-]+) ([^`]+)`", r"`(--[\w-]+) ([^`]+)` \(default"):
            for option, value in re.findall(pattern, text):
                claims.append((page.name, option, value))
                assert option in defaults, f"{page.name}: {option} is not an option"
                assert str(defaults[option]) == value, (
                    f"{page.name}: {option} default is {defaults[option]!r}"
                )
    assert ("inference.md", "--slice-range", "all") in claims  # the pattern still finds the known claim


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_text_defaults_are_the_parsers(command: str) -> None:
    """A one-word ``(default: X)`` in an option's help is its argparse default (prose is allowed)."""
    for action in COMMANDS[command]._actions:
        for value in re.findall(r"\(default: ([\w.-]+)\)", action.help or ""):
            assert value == str(action.default), f"{command} {action.option_strings}: help says {value}"


def test_fast_preset_statements_agree_with_the_code() -> None:
    """Every statement of the ``--fast`` options (docs/inference.md, its help) is ``FAST_PRESET``."""
    key = {
        "tta": "tta",
        "precision": "precision",
        "crop-size": "crop_size",
        "crop-fallback": "crop_fallback_size",
    }
    expected = {k: str(v) for k, v in cli.FAST_PRESET.items()}
    (fast,) = [a for a in COMMANDS["segment"]._actions if "--fast" in a.option_strings]
    docs = " ".join((REPO / "docs" / "inference.md").read_text().split())
    assert re.search(r"`cardiacseg segment --fast` = `--tta", docs), (
        "docs/inference.md no longer states --fast"
    )
    statements = re.findall(r"(--tta \S+ --precision \S+ --crop-size \S+ --crop-fallback \S+)", docs)
    statements += re.findall(
        r"(--tta \S+ --precision \S+ --crop-size \S+ --crop-fallback \S+)", fast.help or ""
    )
    assert len(statements) >= 3  # the Speed sentence, the option table row, the help
    for statement in statements:
        documented = dict(re.findall(r"--([\w-]+) ([^\s`]+)", statement))
        assert {key[k]: v for k, v in documented.items()} == expected, statement
