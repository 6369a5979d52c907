"""Source columns → standard fields, as a layer's declaration says.

Departments name columns their own way and write numbers with thousands separators, units and
full-width digits. Each declared field takes the first source column found among its ``sources``
(compared ignoring case, spaces and full-/half-width forms), and each value is converted to the
field's type. A value that will not convert becomes empty and is reported as a warning: the
feature is still worth having. A record without a required field, or repeating the layer's key,
is rejected. A required field with no column at all fails the file.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from geo.errors import IngestError
from geo.text import strip_unsafe
from layers.catalogue import Layer
from layers.declaration import Field


@dataclass
class Mapped:
    """Standard-field values by record, and what the mapping found."""

    values: dict[str, list]  # field name → one value per record (None when empty)
    columns: dict[str, str]  # field name → source column used
    unmapped: list[str]  # source columns no field took
    rejected: dict[int, str] = field(default_factory=dict)  # row → reason
    warnings: list[tuple[int, str, str]] = field(default_factory=list)  # row, field, reason


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", str(name)).strip().lower()
    return re.sub(r"\s+", "", folded)


def _empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NaT:
        return True
    return isinstance(value, str) and not value.strip()


def _text(value) -> str:
    """A cell as text, without the characters no stored text may hold (geo.text: controls,
    bidirectional overrides, lone surrogates …): a department's file is repaired, not refused."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return strip_unsafe(str(value)).strip()


_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: units departments append to numbers (平方米, 人, m2 …): dropped when the rest is a number
_UNITS = re.compile(r"(平方米|㎡|m2|m²|米|m|人|个|公顷|亩|万)$")


def _number(value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    cleaned = unicodedata.normalize("NFKC", str(value)).strip().replace(",", "").replace(" ", "")
    cleaned = _UNITS.sub("", cleaned)
    if not _NUMERIC.match(cleaned):
        return None
    number = float(cleaned)
    return number if math.isfinite(number) else None


def convert(value, kind: str):
    """One value in a field type: (converted value, None) or (None, why it would not convert)."""
    if _empty(value):
        return None, None
    if kind == "text":
        return _text(value), None
    if kind in ("integer", "number"):
        number = _number(value)
        if number is None:
            return None, f"{_text(value)!r} is not a number"
        if kind == "integer":
            if not number.is_integer():
                return None, f"{_text(value)!r} is not a whole number"
            if abs(number) >= 2**63:
                return None, f"{_text(value)!r} is too large"
            return int(number), None
        return number, None
    if kind == "date":
        if isinstance(value, date):
            return (value.date() if isinstance(value, pd.Timestamp | datetime) else value), None
        try:  # the common ISO form without pandas' format guessing (fast on large files)
            return date.fromisoformat(_text(value)), None
        except ValueError:
            pass
        parsed = pd.to_datetime(_text(value), errors="coerce")
        if pd.isna(parsed):
            return None, f"{_text(value)!r} is not a date"
        return parsed.date(), None
    if kind == "datetime":
        return _moment(value)
    if kind == "boolean":
        folded = _text(value).lower()
        if folded in _TRUE:
            return True, None
        if folded in _FALSE:
            return False, None
        return None, f"{_text(value)!r} is not yes/no (是/否, true/false, 1/0)"
    raise ValueError(kind)


_TRUE = frozenset({"true", "t", "yes", "y", "1", "是", "有", "对"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "否", "无", "不是"})
#: the zone a moment without one was written in: China Standard Time
CHINA_OFFSET = "+08:00"


def _iso_moment(text: str) -> pd.Timestamp | None:
    try:
        return pd.Timestamp(datetime.fromisoformat(text))
    except ValueError:
        return None


def _moment(value):
    """A moment in time; one written without a zone is read as China Standard Time."""
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
    elif (iso := _iso_moment(_text(value))) is not None:
        stamp = iso
    else:
        stamp = pd.to_datetime(_text(value), errors="coerce")
        if pd.isna(stamp):
            return None, f"{_text(value)!r} is not a date and time"
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(CHINA_OFFSET)
    return stamp.to_pydatetime().astimezone(UTC), None


def _describe(f: Field) -> str:
    return f"{f.title_zh or f.name} ({f.name})"


def map_fields(spec: Layer, attributes: pd.DataFrame) -> Mapped:
    """Apply the layer's field declarations to the file's attribute table."""
    keys = {}
    for column in attributes.columns:
        keys.setdefault(_key(column), column)
    columns: dict[str, str] = {}
    for f in spec.fields:
        found = next((keys[_key(s)] for s in f.sources if _key(s) in keys), None)
        if found is not None:
            columns[f.name] = found
        elif f.required:
            raise IngestError(
                f"the file has no column for the required field {_describe(f)}: looked for "
                f"{', '.join(f.sources)}; its columns are {', '.join(map(str, attributes.columns))}"
            )
    used = set(columns.values())
    mapped = Mapped(
        values={},
        columns=columns,
        unmapped=[str(c) for c in attributes.columns if c not in used],
    )
    n = len(attributes)
    for f in spec.fields:
        source = columns.get(f.name)
        if source is None:
            mapped.values[f.name] = [None] * n
            continue
        out = []
        for i, raw in enumerate(attributes[source].tolist()):
            value, problem = convert(raw, f.type)
            if problem:
                mapped.warnings.append((i + 1, f.name, f"{_describe(f)}: {problem}; left empty"))
            if value is None and f.required and (i + 1) not in mapped.rejected:
                mapped.rejected[i + 1] = f"missing required field {_describe(f)}"
            out.append(value)
        mapped.values[f.name] = out
    return mapped


def duplicate_keys(values: list, key: str, rejected: set[int] | dict[int, str]) -> dict[int, str]:
    """Rows repeating the key of an earlier row that is kept (checked after every other
    rejection, so that a rejected row does not make a later good one a duplicate)."""
    first_seen: dict = {}
    duplicates: dict[int, str] = {}
    for i, value in enumerate(values):
        row = i + 1
        if value is None or row in rejected:
            continue
        if value in first_seen:
            duplicates[row] = f"duplicate key {key}={value!r} (first at row {first_seen[value]})"
        else:
            first_seen[value] = row
    return duplicates
