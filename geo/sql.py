"""Table and column names reach SQL one way only: checked, then quoted, here.

Values always travel as bound parameters; names cannot, so every name that is put into SQL text
(record tables, catalogue tables, departmental layers' columns, database names) passes
:func:`ident` or :func:`table`, which refuse anything but plain lower-case identifiers.
"""

from __future__ import annotations

import re

from geo.errors import BadRequest

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class BadIdentifier(BadRequest):
    """A name that may not be used as a table, column or database name."""


def ident(name: str) -> str:
    """``name`` double-quoted, if it is a plain identifier (lower-case letters, digits, _)."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise BadIdentifier(
            f"{name!r} is not a usable name: 1-63 lower-case letters, digits and underscores"
        )
    return f'"{name}"'


def table(name: str) -> str:
    """A table name, optionally schema-qualified (``layers.shelters``), quoted part by part."""
    parts = name.split(".") if isinstance(name, str) else [name]
    if not 1 <= len(parts) <= 2:
        raise BadIdentifier(f"{name!r} is not a table name: [schema.]table")
    return ".".join(ident(part) for part in parts)
