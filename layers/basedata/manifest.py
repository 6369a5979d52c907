"""The district manifest: which file feeds which base table, and how its columns and values map
onto the standard ones. TOML, written by the district's data officer; see the README.

Every key is checked against what the base tables take (``layers.basedata.schema``): a typo is
an error that names the line and says what was meant, before any file is opened.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from geo.errors import BadRequest
from layers.basedata.schema import SPECS

#: other names a manifest may give a table, and the defaults they bring
ALIASES = {
    "emergency_shelters": ("facilities", {"kind": "shelter"}),
    "idle_assets": ("assets", {}),
    "landuse": ("landuse_parcels", {}),
}
ENTRY_KEYS = {
    "file": str,
    "layer": str,
    "crs": str,
    "key": str,
    "codes": str,
    "fields": dict,
    "values": dict,
    "defaults": dict,
}
DISTRICT_KEYS = {"name": str, "code": str, "tolerance_m": (int, float), "metric_srid": int}
CODES = ("given", "generate")


class ManifestError(BadRequest):
    """A manifest that cannot be followed: the message names the line and the key."""


@dataclass(frozen=True)
class Entry:
    """One file feeding one base table."""

    table: str
    file: str
    layer: str | None = None
    crs: str | None = None
    key: str | None = None  # the source column other tables refer to this table's rows by
    codes: str | None = None  # given, generate, or None: given when mapped
    fields: dict[str, str] = field(default_factory=dict)  # standard field → source column
    values: dict[str, dict[str, object]] = field(default_factory=dict)  # field → source → value
    defaults: dict[str, object] = field(default_factory=dict)
    section: str = ""  # where it was written, for messages
    index: int | None = None


@dataclass(frozen=True)
class Manifest:
    folder: Path
    name: str
    code: str | None
    tolerance_m: float
    metric_srid: int | None
    entries: dict[str, list[Entry]]  # table → its files, in load order
    origin: str

    def path(self, entry: Entry) -> Path:
        return (self.folder / entry.file).resolve()


def _line(text: str, header: str | None, key: str, index: int | None) -> int | None:
    """The line of ``key = …`` under ``[header]`` (of the ``index``-th ``[[…]]`` element)."""
    current, counts, element = None, {}, {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        array = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]", line)
        table = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
        if array:
            current = array.group(1)
            counts[current] = counts.get(current, -1) + 1
            element[current] = counts[current]
            continue
        if table:
            current = table.group(1)
            continue
        if current != header and not (header is None and current is None):
            continue
        root = (current or "").split(".")[0]
        if index is not None and element.get(root, 0) != index:
            continue
        quoted = re.escape(key)
        if re.match(rf'^(?:{quoted}|"{quoted}"|\'{quoted}\')\s*=', line):
            return number
    return None


class _Reader:
    def __init__(self, text: str, origin: str):
        self.text, self.origin = text, origin

    def fail(self, message: str, header: str | None = None, key: str = "", index=None):
        line = _line(self.text, header, key, index) if key else None
        where = f"{self.origin}, line {line}" if line else self.origin
        section = f" [{header}]" if header else ""
        raise ManifestError(f"{where}{section}: {message}")

    def keys(self, data: dict, allowed: dict, header: str | None, index=None) -> None:
        for key, value in data.items():
            if key not in allowed:
                self.fail(
                    f"unknown key '{key}'{_meant(key, allowed)}; the keys are {', '.join(allowed)}",
                    header,
                    key,
                    index,
                )
            kind = allowed[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                wanted = {str: "text in quotes", dict: "a table", int: "a whole number"}.get(
                    kind, "a number"
                )
                self.fail(f"'{key}' must be {wanted}", header, key, index)


def _meant(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse(text: str, folder: Path, origin: str = "manifest.toml") -> Manifest:
    """The manifest in ``text`` (its files relative to ``folder``), checked; ManifestError names
    the line and the key of the first thing wrong."""
    reader = _Reader(text, origin)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{origin}: not valid TOML: {exc} (strings need quotes)") from exc
    district = data.pop("district", None)
    if not isinstance(district, dict):
        reader.fail('begins with a [district] table naming the district (name = "…")')
    reader.keys(district, DISTRICT_KEYS, "district")
    if not district.get("name"):
        reader.fail("[district] needs the district's name", "district")
    code = district.get("code")
    if code is not None and not re.fullmatch(r"[0-9]{6}([0-9]{6})?", code):
        reader.fail("code must be the 6-digit GB/T 2260 or 12-digit code", "district", "code")
    entries: dict[str, list[Entry]] = {}
    for name, value in data.items():
        table, implied = ALIASES.get(name, (name, {}))
        if table not in SPECS:
            known = list(SPECS) + list(ALIASES)
            line = next(
                (
                    n
                    for n, raw in enumerate(text.splitlines(), 1)
                    if re.match(rf"^\[\[?\s*{re.escape(name)}[\].]", raw.strip())
                ),
                None,
            )
            where = f"{origin}, line {line}" if line else origin
            raise ManifestError(
                f"{where}: [{name}] is not a base table{_meant(name, known)}; the tables are "
                f"{', '.join(SPECS)} (and {', '.join(ALIASES)})"
            )
        items = value if isinstance(value, list) else [value]
        for index, raw in enumerate(items):
            at = index if isinstance(value, list) else None
            entries.setdefault(table, []).append(_entry(reader, name, table, raw, at, implied))
    if "admin_areas" not in entries:
        reader.fail("names no [admin_areas] file: the district's areas are the one table it needs")
    ordered = {t: entries[t] for t in SPECS if t in entries}
    return Manifest(
        folder=folder,
        name=district["name"],
        code=code,
        tolerance_m=float(district.get("tolerance_m", 50.0)),
        metric_srid=district.get("metric_srid"),
        entries=ordered,
        origin=origin,
    )


def _entry(reader: _Reader, name: str, table: str, raw, index, implied: dict) -> Entry:
    spec = SPECS[table]
    if not isinstance(raw, dict):
        reader.fail(f'[{name}] must be a table of keys (file = "…")')
    reader.keys(raw, ENTRY_KEYS, name, index)
    if not raw.get("file"):
        reader.fail(f'[{name}] needs file = "…" (the file that feeds {table})', name)
    standard = {"id", *spec.standard}
    fields = raw.get("fields", {})
    for key, value in fields.items():
        if key not in standard:
            reader.fail(
                f"{table} has no field '{key}'{_meant(key, standard)}; its fields are "
                f"{', '.join(sorted(standard))}",
                f"{name}.fields",
                key,
                index,
            )
        if not isinstance(value, str) or not value.strip():
            reader.fail(
                f"'{key}' must name a source column, in quotes", f"{name}.fields", key, index
            )
    values = raw.get("values", {})
    for key, mapping in values.items():
        if key not in spec.fields:
            reader.fail(
                f"{table} has no field '{key}'{_meant(key, spec.fields)} to map values of",
                f"{name}.values",
                key,
                index,
            )
        if not isinstance(mapping, dict):
            reader.fail(
                f'values of \'{key}\' are a table: [{name}.values.{key}] "源值" = "value"',
                f"{name}.values",
                key,
                index,
            )
        allowed = spec.fields[key].allowed
        for source, target in mapping.items():
            if allowed is not None and target not in allowed:
                reader.fail(
                    f"'{source}' maps to {target!r}, which {table}.{key} does not take; it takes "
                    f"{', '.join(map(str, allowed))}",
                    f"{name}.values.{key}",
                    source,
                    index,
                )
    defaults = {**implied, **raw.get("defaults", {})}
    for key, value in raw.get("defaults", {}).items():
        if key not in spec.fields:
            reader.fail(
                f"{table} has no field '{key}'{_meant(key, spec.fields)}",
                f"{name}.defaults",
                key,
                index,
            )
        allowed = spec.fields[key].allowed
        if allowed is not None and value not in allowed:
            reader.fail(
                f"default {value!r} is not one of {', '.join(map(str, allowed))}",
                f"{name}.defaults",
                key,
                index,
            )
    codes = raw.get("codes")
    if codes is not None:
        if codes not in CODES or spec.code is None:
            reader.fail(
                f"codes is 'given' or 'generate', for a table with standard codes"
                f" ({', '.join(t for t, s in SPECS.items() if s.code)})",
                name,
                "codes",
                index,
            )
        if codes == "generate" and spec.code in fields:
            reader.fail(
                f"codes = 'generate' but [{name}.fields] maps {spec.code}: drop one",
                name,
                "codes",
                index,
            )
        if codes == "given" and spec.code not in fields:
            reader.fail(
                f"codes = 'given' but [{name}.fields] maps no {spec.code}", name, "codes", index
            )
    return Entry(
        table=table,
        file=raw["file"],
        layer=raw.get("layer"),
        crs=raw.get("crs"),
        key=raw.get("key"),
        codes=codes,
        fields=dict(fields),
        values={k: dict(v) for k, v in values.items()},
        defaults=defaults,
        section=name if index is None else f"{name}[{index + 1}]",
        index=index,
    )


def load(path: Path) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path.name}: a manifest is UTF-8 text") from exc
    return parse(text, path.parent, path.name)
