"""MkDocs hook: renders the CLI reference from lcnas's own argument parser at build time.

``docs/reference/cli.md`` holds the marker below; every verb, option, default and help text is
taken from ``lcnas.cli.build_parser()``, so the page cannot drift from the CLI.
"""

from __future__ import annotations

import argparse
import html

MARKER = "<!-- lcnas-cli-reference -->"


def _escape(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def _option_cell(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
    else:
        names = f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        return names
    if action.choices is not None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = action.metavar or action.dest.upper()
    return f"{names} `{value}`" if action.option_strings else names


def _help_cell(action: argparse.Action) -> str:
    text = _escape(action.help or "")
    if action.required and action.option_strings:
        text = ("**required.** " + text).strip()
    if action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS) \
            and "default" not in (action.help or ""):
        text = f"{text} (default: `{action.default}`)".strip()
    return text or "—"


def _verb_markdown(name: str, parser: argparse.ArgumentParser) -> str:
    lines = [f"## `lcnas {name}`", ""]
    if parser.description:
        lines += [_escape(parser.description), ""]
    usage = parser.format_usage().strip()
    lines += ["```text", usage, "```", ""]
    plain, named = [], []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        if group.title in (None, "positional arguments", "options", "optional arguments"):
            plain += actions
        else:
            named.append((group.title, actions))
    for title, actions in ([(None, plain)] if plain else []) + named:
        if title:
            lines += [f"**{title}**", ""]
        lines += ["| argument | meaning |", "|---|---|"]
        lines += [f"| {_option_cell(a)} | {_help_cell(a)} |" for a in actions]
        lines.append("")
    return "\n".join(lines)


def cli_reference_markdown() -> str:
    from lcnas.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return "\n".join(_verb_markdown(name, p) for name, p in sub.choices.items())


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference_markdown())
    return markdown
