"""Which characters a text may hold: one rule for every text that enters (record fields, filters,
purposes, sync ids, ingested attributes).

Refused: lone surrogates (they cannot even be stored), control characters other than tab and
line breaks (C0 and C1), invisible format characters (bidirectional overrides such as U+202E that
make "txt.exe" read as "exe.txt", zero-width characters, Unicode tag characters) and
noncharacters (U+FFFE, U+FFFF, U+FDD0–U+FDEF …). Private-use characters are kept: rare
characters of Chinese names (生僻字) are often encoded there.
"""

from __future__ import annotations

import unicodedata

ALLOWED_CONTROLS = frozenset("\t\n\r")


def _noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def text_problem(value: str) -> str | None:
    """None if ``value`` may be stored; else what is wrong, for the caller's message."""
    for char in value:
        code = ord(char)
        if char in ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category == "Cs":
            return f"holds a lone surrogate (U+{code:04X}): send valid Unicode text"
        if category == "Cc":
            return f"holds a control character (U+{code:04X}): remove it"
        if category == "Cf":
            return f"holds an invisible format character (U+{code:04X}): remove it"
        if _noncharacter(code):
            return f"holds a noncharacter (U+{code:04X}): remove it"
    return None


def strip_unsafe(value: str) -> str:
    """``value`` without the characters :func:`text_problem` refuses (for ingest, which repairs)."""
    return "".join(ch for ch in value if text_problem(ch) is None)


def first_problem(value, max_depth: int = 32, _depth: int = 0) -> str | None:
    """The first refused text anywhere inside a parsed JSON value (keys included), or None."""
    if _depth > max_depth:
        return f"nests deeper than {max_depth} levels"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else None
            problem = problem or first_problem(item, max_depth, _depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = first_problem(item, max_depth, _depth + 1)
            if problem:
                return problem
    return None
