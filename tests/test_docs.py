"""The README, the docs site and the folder READMEs reference only files that exist in the repository
and CLI flags that the CLI (or the benchmark script) accepts.

What is checked, in every file of ``DOC_FILES``:

- **Links** ``[text](target)`` outside code: a relative target must exist (resolved from the file's
  folder; the ``#anchor`` is dropped). URLs and in-page anchors are not checked here (the strict
  MkDocs build checks the site's own links and anchors).
- **Repository paths** in inline code and code blocks: a token that starts with a top-level folder
  of the repository (``lcnas/``, ``benchmarks/``, ``studies/``, ...) or names a top-level file
  (``Makefile``, ``mkdocs.yml``, ...) must exist. A bare file name (``knob_layer20_kd32.json``) must
  be the name of some file in the repository, unless it is one of the files lcnas writes
  (``OUTPUT_NAMES``). Not checked: paths under ``runs/`` (run outputs, git-ignored), paths with
  placeholders or wildcards (``<name>``, ``*``, ``...``), paths outside the repository (``~/``,
  ``../``, ``$VAR/``), and outputs: the value of ``--out`` / ``--site-dir`` and paths ending in one of
  ``OUTPUT_NAMES``, except under ``benchmarks/results/``, whose files the docs present as the
  current results.
- **CLI flags**: in ``lcnas <verb> ...`` the verb must exist and every ``--flag`` must be one the
  verb's parser accepts (the parser is built from ``lcnas.cli``); in ``python benchmarks/<x>.py ...``
  every ``--flag`` must be declared by that script.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path

import pytest

from lcnas.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

DOC_FILES = sorted(
    [ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "studies" / "README.md", ROOT / "latency_models" / "README.md"]
    + list((ROOT / "docs").rglob("*.md"))
)

TOP_DIRS = ("lcnas", "benchmarks", "studies", "search_spaces", "latency_models", "tests", "docs", ".ci")
TOP_FILES = ("README.md", "CHANGELOG.md", "mkdocs.yml", "Makefile", "pyproject.toml", ".gitignore")
CHECKED_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".md", ".pt", ".cpp", ".toml")
# Files lcnas and its scripts write (named in the docs as outputs, never shipped in the repository).
OUTPUT_NAMES = {
    "results.json", "trials.csv", "pareto.json", "pareto.png", "study.db", "final.pt", "last.pt",
    "metrics.json", "picked.json", "report.md", "report.json", "model.ts", "my-cpu.json", "result.json",
}
OUTPUT_FLAGS = ("--out", "--site-dir", "-d")
_SKIP_DIRS = {".git", ".venv", "runs", "site", "__pycache__", "build", "dist", "node_modules"}

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
_INLINE = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_PLACEHOLDER = re.compile(r"[<>*{}$~]|\.\.\.|\[|\]")
_TOKEN_STRIP = "`'\",;:()[]"


def _repo_basenames() -> set[str]:
    names = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        names.update(filenames)
    return names


def split_markdown(text: str) -> tuple[list[str], list[str], str]:
    """(code blocks, inline code spans, prose with the code removed) of a Markdown text."""
    blocks = [m.group(2) for m in _FENCE.finditer(text)]
    rest = _FENCE.sub("\n", text)
    spans = [m.group(2) for m in _INLINE.finditer(rest)]
    prose = _INLINE.sub(" ", rest)
    return blocks, spans, prose


def _command_lines(blocks: list[str], spans: list[str]) -> list[str]:
    lines = []
    for block in blocks:
        lines += block.replace("\\\n", " ").splitlines()
    lines += [" ".join(s.split()) for s in spans]
    return lines


def _tokens(line: str) -> list[str]:
    line = line.split(" #", 1)[0]
    try:
        return shlex.split(line, posix=True)
    except ValueError:
        return line.split()


def _looks_like_repo_path(token: str) -> bool:
    if token in TOP_FILES:
        return True
    head = token.split("/", 1)[0]
    return "/" in token and head in TOP_DIRS


def missing_paths(text: str, basenames: set[str] | None = None) -> list[str]:
    """Repository paths and file names referenced in the code of ``text`` that do not exist."""
    blocks, spans, _ = split_markdown(text)
    basenames = _repo_basenames() if basenames is None else basenames
    missing = []
    for line in _command_lines(blocks, spans):
        tokens = _tokens(line)
        for i, raw in enumerate(tokens):
            for token in re.split(r"[,=]", raw):
                token = token.strip(_TOKEN_STRIP).rstrip(".")
                if not token or _PLACEHOLDER.search(token) or "://" in token:
                    continue
                is_output = i > 0 and tokens[i - 1] in OUTPUT_FLAGS or raw.startswith(tuple(f + "=" for f in OUTPUT_FLAGS))
                if _looks_like_repo_path(token):
                    if (is_output or Path(token).name in OUTPUT_NAMES) and not token.startswith("benchmarks/results/"):
                        continue
                    if not (ROOT / token).exists():
                        missing.append(token)
                elif "/" not in token and token.endswith(CHECKED_SUFFIXES) and not token.startswith(("-", ".")):
                    if is_output or token in OUTPUT_NAMES:
                        continue
                    if re.fullmatch(r"[\w.+-]+", token) and token not in basenames:
                        missing.append(token)
    return sorted(set(missing))


def missing_links(text: str, where: Path) -> list[str]:
    """Relative link targets in the prose of ``text`` (a file in folder ``where``) that do not exist."""
    _, _, prose = split_markdown(text)
    missing = []
    for m in _LINK.finditer(prose):
        target = m.group(1)
        if target.startswith("#") or re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path = target.split("#", 1)[0]
        if path and not (where / path).exists():
            missing.append(target)
    return missing


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _script_flags(script: Path) -> set[str]:
    """The option strings a benchmark script's argparse declares (read from its source, not run)."""
    flags = {"-h", "--help"}
    for call in re.findall(r"add_argument\(([^)]*)", script.read_text()):
        flags.update(re.findall(r"[\"'](--?[A-Za-z][-\w]*)[\"']", call))
    return flags


def bad_flags(text: str) -> list[str]:
    """``lcnas <verb> --flag`` and ``python benchmarks/x.py --flag`` uses in the code of ``text`` that the
    CLI or the script does not accept."""
    blocks, spans, _ = split_markdown(text)
    parsers = _parsers()
    bad = []
    for line in _command_lines(blocks, spans):
        for segment in re.split(r"&&|\|\||;|\|(?=\s)", line):
            tokens = _tokens(segment)
            for i, token in enumerate(tokens):
                if Path(token).name == "lcnas" and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                    verb = tokens[i + 1]
                    # a command starts its segment (after VAR=value settings); `lcnas search: error: ...`
                    # quotes an error message, and "lcnas" inside a sentence is no command
                    if verb == "..." or _PLACEHOLDER.search(verb) or verb.endswith((":", ")")) or any("=" not in t for t in tokens[:i]):
                        continue
                    if verb not in parsers:
                        bad.append(f"lcnas {verb}: no such command")
                        continue
                    accepted = {s for a in parsers[verb]._actions for s in a.option_strings}
                    bad += [f"lcnas {verb} {f}" for f in _flags(tokens[i + 2:]) if f not in accepted]
                    break
                if token.startswith("benchmarks/") and token.endswith(".py") and (ROOT / token).exists():
                    accepted = _script_flags(ROOT / token)
                    bad += [f"{token} {f}" for f in _flags(tokens[i + 1:]) if f not in accepted]
                    break
    return sorted(set(bad))


def _flags(tokens: list[str]) -> list[str]:
    return [t.split("=", 1)[0] for t in tokens if re.fullmatch(r"--?[A-Za-z][-\w]*(=.*)?", t)]


@pytest.fixture(scope="module")
def basenames() -> set[str]:
    return _repo_basenames()


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("doc", DOC_FILES, ids=_ids(DOC_FILES))
def test_referenced_files_exist(doc: Path, basenames: set[str]) -> None:
    name = doc.relative_to(ROOT)
    assert doc.exists(), f"{name} is missing"
    text = doc.read_text(encoding="utf-8")
    missing = missing_paths(text, basenames)
    assert not missing, f"{name} references files that do not exist: {missing}"
    broken = missing_links(text, doc.parent)
    assert not broken, f"{name} links to files that do not exist: {broken}"


@pytest.mark.parametrize("doc", DOC_FILES, ids=_ids(DOC_FILES))
def test_cli_flags_are_accepted(doc: Path) -> None:
    assert doc.exists(), f"{doc.relative_to(ROOT)} is missing"
    bad = bad_flags(doc.read_text(encoding="utf-8"))
    assert not bad, f"{doc.relative_to(ROOT)} uses commands or flags that are not accepted: {bad}"


def test_the_checks_catch_broken_references(basenames: set[str]) -> None:
    """A deliberately broken page: every kind of bad reference is reported, and the exemptions hold."""
    page = "\n".join([
        "See [the guide](guides/no-such-page.md) and [home](index.md#top) and [web](https://example.org/x.md).",
        "Run `python benchmarks/no_such_script.py` or `python benchmarks/skip_speed.py --no-such-option 1`.",
        "```bash",
        "lcnas search --space lcnet_cifar10 --no-such-flag 3 --trials 2 --out runs/x",
        "lcnas train -c studies/no_such_study.yaml --set epochs=1",
        "lcnas frobnicate --fast",
        "lcnas search: error: --trials must be >= 1 (an error message, not a command)",
        "lcnas profile --model resnet20 --out latency_models/my-cpu.json \\",
        "  --batch 1,64",
        "```",
        "Results in `no_such_result_file.json`, outputs in `runs/<name>/final.pt`, `results.json`, `search_spaces/*.yaml`.",
        "A current result `benchmarks/results/skip_speed_cpu_1t.json`, a missing one: `--out benchmarks/results/gone.json`.",
    ])
    assert missing_paths(page, basenames) == sorted([
        "benchmarks/no_such_script.py", "studies/no_such_study.yaml", "no_such_result_file.json", "benchmarks/results/gone.json"])
    assert missing_links(page, ROOT / "docs") == ["guides/no-such-page.md"]
    assert bad_flags(page) == sorted([
        "lcnas search --no-such-flag", "lcnas frobnicate: no such command", "benchmarks/skip_speed.py --no-such-option"])


def test_architecture_module_map_names_every_module() -> None:
    """docs/architecture.md's module map names every module of the package (a new module is mapped)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [p for p in (ROOT / "lcnas").rglob("*") if p.suffix in (".py", ".cpp") and p.name not in ("__init__.py", "__main__.py")
               and "__pycache__" not in p.parts and p.parent.name not in ("search_spaces", "latency_models")]
    unnamed = sorted(str(p.relative_to(ROOT)) for p in modules
                     if f"`{p.name}`" not in text and f"`{p.relative_to(ROOT).as_posix()}`" not in text)
    assert not unnamed, f"docs/architecture.md's module map does not name: {unnamed}"
