"""MkDocs hook: lcnas's docstrings cross-reference with Sphinx roles (``:class:`~lcnas.x.Y```), which
mkdocstrings renders as text. This shows such a reference as plain code, ``~`` keeping only the
last component, as Sphinx would."""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):<code>(~?)([^<]*)</code>")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    return _ROLE.sub(_code, html)
