"""A base table's rows made whole: references resolved to the parents' ids and codes, positions
taken from parents where a row has none, each row placed in its community and grid, missing
codes allocated from the containing area, derived fields filled, and every row checked as the
database will check it. A row that cannot be made whole is rejected with the reason.

Tables are built parents first, so that a child can look its parent up (by the key the files
use) and a rejected parent's children are rejected with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import shapely

from geo import codes, district
from geo.policy.masks import keyed_hash
from layers.basedata.rows import EntryRows
from layers.basedata.schema import CODE_FORMATS, TableSpec
from layers.coordinates import to_metric

#: how far (degrees, about 1 m) a row may lie outside the area it names and still be in it
NEAR_DEG = 1e-5
_AREA_KINDS = {1: ("district",), 2: ("street", "town"), 3: ("community", "village")}
_LEVEL_OF_KIND = {k: level for level, kinds in _AREA_KINDS.items() for k in kinds}


@dataclass
class Built:
    """A table's rows as they will be loaded, for its children to look up."""

    c: dict[str, list]  # the table's columns + _key, _file, _row; kept rows only
    by_key: dict[str, int]  # a row's key as the files write it → its position
    rejected_keys: dict[str, str]  # key → why that row was rejected
    tree: shapely.STRtree | None = None
    indexes: dict[str, dict] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.c["_row"])

    def lookup(self, key: str) -> int | None:
        return self.by_key.get(key)


@dataclass
class Work:
    """One table being built: its rows, and what has happened to each (by position)."""

    spec: TableSpec
    c: dict[str, list]  # column → one value per row (lists: fast to read and write by row)
    rejected: dict[int, str] = field(default_factory=dict)
    repaired: dict[int, str] = field(default_factory=dict)
    warnings: list[tuple[int, str, str]] = field(default_factory=list)  # position, field, why
    derived: dict[str, int] = field(default_factory=dict)
    generated: int = 0
    where: dict[int, tuple[float, float]] = field(default_factory=dict)  # rejected shapes' place

    def reject(self, i: int, reason: str) -> None:
        self.rejected.setdefault(int(i), reason)

    def alive(self) -> np.ndarray:
        mask = np.ones(len(self.c["_row"]), dtype=bool)
        mask[list(self.rejected)] = False
        return mask

    def fill(self, column: str, i: int, value) -> None:
        self.c[column][i] = value
        self.derived[column] = self.derived.get(column, 0) + 1


@dataclass
class Context:
    metric_srid: int
    hash_key: str
    district_code: str | None
    built: dict[str, Built]
    #: how far (m) a row may lie outside the district or the area it names: drawings of
    #: different bureaus do not meet exactly (the manifest's tolerance_m)
    tolerance_m: float = 50.0

    @property
    def near_deg(self) -> float:
        """The tolerance in degrees, generous in latitude (a degree of longitude is shorter)."""
        return self.tolerance_m / 111_320.0 / math.cos(math.radians(_LATITUDE))


#: the latitude the degree tolerance is worked out at (China's northern edge: the most generous)
_LATITUDE = 54.0


def combine(spec: TableSpec, parts: list[EntryRows]) -> Work:
    """The rows of every file of a table, one frame, in manifest and file order."""
    frames, rejected, repaired, warnings, where = [], {}, {}, [], {}
    offset = 0
    for part in parts:
        f = part.values.copy()
        f["_file"] = part.file.file
        f["geom"] = list(part.geometry) if part.geometry is not None else [None] * len(f)
        frames.append(f)
        rejected.update({offset + r - 1: why for r, why in part.rejected.items()})
        repaired.update({offset + r - 1: why for r, why in part.repaired.items()})
        warnings.extend((offset + r - 1, fld, why) for r, fld, why in part.warnings)
        where.update({offset + r - 1: xy for r, xy in part.where.items()})
        offset += len(f)
    frame = pd.concat(frames, ignore_index=True).astype(object)
    c = {column: frame[column].tolist() for column in frame.columns}
    for column in (*spec.fields, *(r.stored for r in spec.references.values()), "id", "geom"):
        c.setdefault(column, [None] * len(frame))
    return Work(spec, c, rejected, repaired, warnings, where=where)


# --- references and places ----------------------------------------------------------------------


def resolve_references(work: Work, ctx: Context) -> None:
    """``ref:<noun>`` columns (the parent's key as the file writes it) → the stored column."""
    for noun, ref in work.spec.references.items():
        column = f"ref:{noun}"
        if column not in work.c:
            continue
        parent = ctx.built.get(ref.parent)
        values = work.c[column]
        stored = work.c[ref.stored]
        for i, key in enumerate(values):
            if key is None or i in work.rejected:
                continue
            if ref.parent == work.spec.name:
                continue  # within the table (an area's parent area): its builder resolves it
            if parent is None:
                work.reject(i, f"refers to {noun} {key!r}, but the manifest loads no {ref.parent}")
            elif (at := _find(parent, key, ref.target)) is not None:
                stored[i] = parent.c[ref.target][at]
            elif key in parent.rejected_keys:
                work.reject(i, f"its {noun} {key!r} was rejected")
            else:
                work.reject(i, f"dangling reference: {noun} {key!r} is not in {ref.parent}")


def _find(parent: Built, key: str, target: str) -> int | None:
    """A parent row by its key as the files write it, or else by its standard code (which may
    have been allocated during this import)."""
    at = parent.lookup(key)
    if at is None and target == "code":
        if "code" not in parent.indexes:
            parent.indexes["code"] = {v: i for i, v in enumerate(parent.c["code"])}
        at = parent.indexes["code"].get(key)
    return at


def _point(geom):
    if geom is None:
        return None
    return geom if geom.geom_type == "Point" else shapely.point_on_surface(geom)


def _parent_row(ctx: Context, table: str, column: str, value) -> _Row | None:
    """The built parent row whose ``column`` (id or code) is ``value``: a view by column."""
    parent = ctx.built.get(table)
    if parent is None or value is None:
        return None
    if column not in parent.indexes:
        parent.indexes[column] = {v: i for i, v in enumerate(parent.c[column])}
    at = parent.indexes[column].get(value)
    return None if at is None else _Row(parent.c, at)


class _Row:
    """One row of a table being built, read by column name."""

    __slots__ = ("at", "c")

    def __init__(self, c: dict[str, list], at: int):
        self.c, self.at = c, at

    def __getitem__(self, column: str):
        return self.c[column][self.at]

    def get(self, column: str, default=None):
        return self.c[column][self.at] if column in self.c else default


def positions_from_parents(work: Work, ctx: Context) -> None:
    """A row without its own position stands at its parent's (a house at its building's)."""
    for noun in work.spec.geometry_from:
        ref = work.spec.references[noun]
        for i in np.flatnonzero(work.alive()):
            if work.c["geom"][i] is None:
                parent = _parent_row(ctx, ref.parent, ref.target, work.c[ref.stored][i])
                if parent is not None:
                    work.fill("geom", i, _point(parent["geom"]))


def containing(
    ctx: Context, table: str, geoms: list, where: Callable[[dict], np.ndarray] | None = None
) -> list[int | None]:
    """For each geometry, the position in ``table``'s built frame of the first row whose shape
    covers its representative point (a point on a shared edge belongs to the first)."""
    parent = ctx.built.get(table)
    out: list[int | None] = [None] * len(geoms)
    if parent is None or parent.tree is None:
        return out
    points = [_point(g) for g in geoms]
    asked = [i for i, p in enumerate(points) if p is not None]
    if not asked:
        return out
    pairs = parent.tree.query(np.array([points[i] for i in asked]), predicate="intersects")
    allowed = where(parent.c) if where is not None else None
    for a, b in zip(pairs[0], pairs[1], strict=True):
        if allowed is not None and not allowed[b]:
            continue
        i = asked[a]
        if out[i] is None or b < out[i]:
            out[i] = int(b)
    return out


def place(
    work: Work,
    ctx: Context,
    column: str,
    table: str,
    target: str,
    what: str,
    required: bool,
    where: Callable[[dict], np.ndarray] | None = None,
) -> None:
    """Fill ``column`` (a grid or area code) from the area the row lies in, or check the one the
    file gives. A row outside every area but within the tolerance of one (where the areas'
    drawings stop short of each other) goes to the nearest, with a warning; a row farther than
    the tolerance from the area it names, or from every area, is rejected."""
    alive = np.flatnonzero(work.alive())
    parent = ctx.built.get(table)
    geoms = [work.c["geom"][i] for i in alive]
    found = containing(ctx, table, geoms, where)
    for i, at, geom in zip(alive, found, geoms, strict=True):
        given = work.c[column][i]
        if given is not None:
            row = _parent_row(ctx, table, target, given)
            if (
                row is not None
                and geom is not None
                and not shapely.dwithin(row["geom"], _point(geom), ctx.near_deg)
            ):
                work.reject(i, f"lies more than {ctx.tolerance_m:g} m outside its {what} {given}")
            continue
        if at is None and geom is not None:
            at = _nearest(ctx, parent, geom, where)
            if at is not None:
                work.warnings.append(
                    (i, column, f"lies in no {what}: placed in the nearest, {parent.c[target][at]}")
                )
        if at is not None:
            work.fill(column, i, parent.c[target][at])
        elif required and geom is not None:
            work.reject(i, f"outside every {what}: none lies within {ctx.tolerance_m:g} m of it")


def _nearest(ctx: Context, parent: Built | None, geom, where) -> int | None:
    """The parent row nearest to the geometry's point, if within the tolerance."""
    if parent is None or parent.tree is None:
        return None
    hits = parent.tree.query(_point(geom), predicate="dwithin", distance=ctx.near_deg)
    if where is not None:
        allowed = where(parent.c)
        hits = [h for h in hits if allowed[h]]
    if not len(hits):
        return None
    point = _point(geom)
    return int(min(hits, key=lambda h: shapely.distance(parent.c["geom"][h], point)))


# --- codes --------------------------------------------------------------------------------------


def allocate_codes(
    work: Work, prefix_of: Callable[[int], str | None], digits: int, pad: int = 0
) -> None:
    """Codes for rows that have none: the area's prefix, the next free sequence under it (after
    the largest code the files already use there), and ``pad`` zeros (a street's code is the
    district's 6 digits, 3 of its own, 000)."""
    frame = work.c
    code = work.spec.code
    width = digits + pad
    taken: dict[str, int] = {}
    for value in frame[code]:
        if isinstance(value, str) and len(value) > width and value[-width:].isdigit():
            prefix, seq = value[:-width], int(value[-width:][:digits])
            taken[prefix] = max(taken.get(prefix, 0), seq)
    for i in np.flatnonzero(work.alive()):
        if frame[code][i] is not None:
            continue
        prefix = prefix_of(i)
        if prefix is None:
            continue
        nxt = taken.get(prefix, 0) + 1
        if nxt >= 10**digits:
            work.reject(i, f"no free code left under {prefix}")
            continue
        taken[prefix] = nxt
        frame[code][i] = prefix + str(nxt).zfill(digits) + "0" * pad
        work.generated += 1


def check_nesting(work: Work, parent_column: str, length: int, what: str) -> None:
    """A code must extend the code of the area it is in (the database checks it too)."""
    code = work.spec.code
    for i in np.flatnonzero(work.alive()):
        value, parent = work.c[code][i], work.c[parent_column][i]
        if value is not None and parent is not None and value[:length] != parent[:length]:
            work.reject(i, f"code {value} does not extend the code of its {what} ({parent})")


# --- derived fields and row checks --------------------------------------------------------------


def default_unset(work: Work, column: str, value_of: Callable[[int], object]) -> None:
    for i in np.flatnonzero(work.alive()):
        if work.c[column][i] is None:
            value = value_of(i)
            if value is not None:
                work.fill(column, i, value)


def measure(work: Work, ctx: Context, column: str, how: str) -> None:
    """Areas and lengths in metres, in the metric CRS, where the file gives none."""
    rows = [i for i in np.flatnonzero(work.alive()) if work.c[column][i] is None]
    geoms = [work.c["geom"][i] for i in rows]
    present = [j for j, g in enumerate(geoms) if g is not None]
    if not present:
        return
    metric = to_metric(np.array([geoms[j] for j in present], dtype=object), ctx.metric_srid)
    sizes = shapely.area(metric) if how == "area" else shapely.length(metric)
    for j, size in zip(present, sizes, strict=True):
        work.fill(column, rows[j], round(float(size), 1))


def _server_default(column) -> object:
    text = str(column.server_default.arg).strip("'") if column.server_default is not None else None
    return {"{}": [], "false": False, "true": True}.get(text, None if text is None else _num(text))


def _num(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def check_rows(work: Work) -> None:
    """Every row as the database will see it: required fields, enumerations, lengths, numeric
    bounds, code formats, and no code, key or unique value twice."""
    spec, frame = work.spec, work.c
    table = district.table(spec.name)
    for name, fspec in spec.fields.items():
        column = table.columns[name]
        values = frame[name]
        fallback = _server_default(column)
        for i in np.flatnonzero(work.alive()):
            value = values[i]
            if value is None and fallback is not None:
                frame[name][i] = [] if fallback == [] else fallback
                continue
            if value is None:
                if not column.nullable and name != "id":
                    work.reject(i, f"missing {name}")
                continue
            if fspec.allowed is not None and value not in fspec.allowed:
                work.reject(
                    i, f"{name} {value!r} is not one of {', '.join(map(str, fspec.allowed))}"
                )
            elif fspec.length is not None and isinstance(value, str) and len(value) > fspec.length:
                work.reject(i, f"{name} is {len(value)} characters long; at most {fspec.length}")
            elif fspec.bound is not None and abs(float(value)) >= fspec.bound:
                work.reject(i, f"{name} {value} is too large (below {fspec.bound:g})")
            elif (pattern := CODE_FORMATS.get((spec.name, name))) and not re.fullmatch(
                pattern.strip("^$"), str(value)
            ):
                work.reject(i, f"{name} {value!r} is not a valid code ({_format_words(pattern)})")
    if spec.geometry is not None:
        for i in np.flatnonzero(work.alive()):
            if frame["geom"][i] is None:
                work.reject(i, "missing geometry (and no parent to take a position from)")
    for name in _unique_columns(spec.name):
        _duplicates(work, name)
    if "_key" in frame:
        _duplicates(work, "_key", "key")


def _format_words(pattern: str) -> str:
    return "format " + pattern.strip("^$")


def _unique_columns(table: str) -> list[str]:
    t = district.table(table)
    return [c.name for c in t.columns if c.unique and c.name in t.columns and c.name != "id"]


def _duplicates(work: Work, column: str, what: str | None = None) -> None:
    seen: dict = {}
    frame = work.c
    for i in np.flatnonzero(work.alive()):
        value = frame[column][i]
        if value is None:
            continue
        if value in seen:
            first = seen[value]
            work.reject(
                i,
                f"duplicate {what or column} {value!r} (first at {frame['_file'][first]} "
                f"row {frame['_row'][first]})",
            )
        else:
            seen[value] = i


def assign_ids(work: Work) -> None:
    """Ids as the files give them, or numbered on in file order after the largest given."""
    ids = work.c["id"]
    for i in np.flatnonzero(work.alive()):
        if ids[i] is not None and int(ids[i]) <= 0:
            work.reject(i, f"id {ids[i]} must be a positive whole number")
    _duplicates(work, "id")
    given = [int(v) for v in ids if v is not None]
    nxt = max(given, default=0) + 1
    for i in range(len(ids)):
        if ids[i] is None:
            ids[i] = nxt
            nxt += 1


def finish(work: Work) -> Built:
    """The kept rows, indexed by their key for the children."""
    keep = work.alive()
    kept = np.flatnonzero(keep)
    c = {column: [values[i] for i in kept] for column, values in work.c.items()}
    rejected_keys = {}
    for i, why in work.rejected.items():
        key = work.c["_key"][i]
        if key is not None:
            rejected_keys[key] = why
    by_key = {k: i for i, k in enumerate(c["_key"]) if k is not None}
    tree = None
    if work.spec.geometry is not None and len(kept):
        tree = shapely.STRtree(np.array(c["geom"], dtype=object))
    return Built(c, by_key, rejected_keys, tree)


# --- per table ----------------------------------------------------------------------------------


def admin_areas(work: Work, ctx: Context) -> str | None:
    """Level and kind from each other (or the name), the one district, parents by containment,
    codes by level: district → street/town (+3 digits, +000) → community/village (+3 digits).
    Returns a problem that refuses the import, or None."""
    frame = work.c
    for i in np.flatnonzero(work.alive()):
        level, kind, name = frame["level"][i], frame["kind"][i], frame["name"][i] or ""
        if level is None and kind is not None:
            work.fill("level", i, _LEVEL_OF_KIND[kind])
        elif level is None:
            guess = _level_from_name(name)
            if guess is None:
                work.reject(i, f"cannot tell the level of '{name}': map level or kind")
                continue
            work.fill("level", i, guess)
        level = frame["level"][i]
        if kind is None:
            work.fill("kind", i, _kind_from_name(int(level), name))
        elif _LEVEL_OF_KIND[kind] != level:
            work.reject(i, f"kind {kind} is not an area of level {level}")
    alive = np.flatnonzero(work.alive())
    tops = [i for i in alive if frame["level"][i] == 1]
    if len(tops) != 1:
        return f"admin_areas must hold exactly one district (level 1); the files hold {len(tops)}"
    top = tops[0]
    if frame["code"][top] is None:
        code = ctx.district_code
        if code is None:
            return "the district has no code: map admin_areas code, or set [district] code"
        frame["code"][top] = code.ljust(12, "0")
        work.generated += 1
    ctx.district_code = frame["code"][top]
    district_geom = frame["geom"][top]
    parents = frame.get("ref:parent") or [None] * len(frame["_row"])
    by_key = {k: j for j, k in enumerate(frame["_key"]) if k is not None}
    for level in (2, 3):
        rows = [i for i in np.flatnonzero(work.alive()) if frame["level"][i] == level]
        for i in rows:  # a parent named by its key: its code, now that the level above has one
            named = parents[i]
            if named is not None:
                j = by_key.get(named)
                if j is None or j in work.rejected:
                    why = "was rejected" if j is not None else "is not in admin_areas"
                    work.reject(i, f"its parent area {named!r} {why}")
                else:
                    frame["parent_code"][i] = frame["code"][j]
        by_code = {
            frame["code"][j]: j
            for j in np.flatnonzero(work.alive())
            if frame["level"][j] == level - 1 and frame["code"][j] is not None
        }
        uppers = [j for j in np.flatnonzero(work.alive()) if frame["level"][j] == level - 1]
        for i in rows:
            if i in work.rejected:
                continue
            point = _point(frame["geom"][i])
            if point is None or not shapely.dwithin(district_geom, point, NEAR_DEG):
                work.reject(i, "outside the district")
                continue
            parent = frame["parent_code"][i]
            if parent is not None:
                if parent not in by_code:
                    work.reject(i, f"its parent {parent} is not an area of level {level - 1}")
                elif not shapely.dwithin(frame["geom"][by_code[parent]], point, NEAR_DEG):
                    work.reject(i, f"lies outside its parent area {parent}")
                continue
            holder = next(
                (j for j in uppers if shapely.dwithin(frame["geom"][j], point, NEAR_DEG)), None
            )
            if holder is None:
                work.reject(i, f"lies in no area of level {level - 1}")
            elif frame["code"][holder] is None:
                work.reject(i, "its parent area has no code")
            else:
                work.fill("parent_code", i, frame["code"][holder])
        keep = 6 if level == 2 else 9
        allocate_codes(
            work,
            lambda i, k=keep, lv=level: (
                frame["parent_code"][i][:k]
                if frame["level"][i] == lv and frame["parent_code"][i]
                else None
            ),
            3,
            pad=3 if level == 2 else 0,
        )
        for i in rows:
            code, parent = frame["code"][i], frame["parent_code"][i]
            if i in work.rejected or code is None or parent is None:
                continue
            if code[:keep] != parent[:keep]:
                work.reject(i, f"code {code} does not extend its parent's code {parent}")
    return None


def _level_from_name(name: str) -> int | None:
    if name.endswith(("社区", "村", "居委会", "村委会")):
        return 3
    if name.endswith(("街道", "镇", "乡")):
        return 2
    if name.endswith(("区", "县", "市")):
        return 1
    return None


def _kind_from_name(level: int, name: str) -> str:
    if level == 1:
        return "district"
    if level == 2:
        return "town" if name.endswith(("镇", "乡")) else "street"
    return "village" if name.endswith(("村", "村委会")) else "community"


def _communities(frame: dict[str, list]) -> np.ndarray:
    return np.array([level == 3 for level in frame["level"]], dtype=bool)


def grids(work: Work, ctx: Context) -> None:
    place(work, ctx, "community_code", "admin_areas", "code", "community", True, _communities)
    names = _names(ctx)
    counts: dict[str, int] = {}
    allocate_codes(work, lambda i: work.c["community_code"][i], 3)
    for i in np.flatnonzero(work.alive()):
        community = work.c["community_code"][i]
        counts[community] = counts.get(community, 0) + 1
        if work.c["name"][i] is None and work.c["code"][i] is not None:
            work.fill("name", i, f"{names.get(community, '')}第{work.c['code'][i][-3:]}网格")
    check_nesting(work, "community_code", 12, "community")


def _names(ctx: Context) -> dict[str, str]:
    areas = ctx.built["admin_areas"].c
    return dict(zip(areas["code"], areas["name"], strict=True))


def buildings(work: Work, ctx: Context) -> None:
    place(work, ctx, "grid_code", "grids", "code", "grid", True)
    allocate_codes(work, lambda i: work.c["grid_code"][i], 4)
    check_nesting(work, "grid_code", 15, "grid")
    f = work.c
    default_unset(work, "height_m", lambda i: _height(f["floors"][i]))
    default_unset(work, "floors", lambda i: _floors(f["height_m"][i]))
    default_unset(work, "use", lambda i: "residential" if (f["dwellings"][i] or 0) > 0 else "other")


def _height(floors) -> float | None:
    return None if floors is None else round(float(floors) * 3.0, 1)


def _floors(height) -> int | None:
    return None if height is None else max(1, round(float(height) / 3.0))


def addresses(work: Work, ctx: Context) -> None:
    f = work.c
    default_unset(
        work,
        "grid_code",
        lambda i: _of(ctx, "buildings", "id", f["building_id"][i], "grid_code"),
    )
    place(work, ctx, "grid_code", "grids", "code", "grid", False)
    default_unset(work, "area_code", lambda i: (f["grid_code"][i] or "")[:12] or None)
    place(work, ctx, "area_code", "admin_areas", "code", "community", True, _communities)
    allocate_codes(work, lambda i: f["area_code"][i], 8)
    check_nesting(work, "area_code", 12, "community")
    for i in np.flatnonzero(work.alive()):
        grid, area = f["grid_code"][i], f["area_code"][i]
        if grid is not None and area is not None and grid[:12] != area:
            work.reject(i, f"its grid {grid} is not in its community {area}")
    default_unset(work, "level", lambda i: _address_level(_Row(f, i)))


def _address_level(row) -> str:
    for column, level in (
        ("room_number", "room"),
        ("unit_number", "unit"),
        ("building_number", "building"),
        ("door_number", "door"),
    ):
        if row.get(column) is not None:
            return level
    return "road"


def _of(ctx: Context, table: str, column: str, value, wanted: str):
    row = _parent_row(ctx, table, column, value)
    return None if row is None else row[wanted]


def houses(work: Work, ctx: Context) -> None:
    f = work.c
    missing = [i for i in np.flatnonzero(work.alive()) if f["building_id"][i] is None]
    found = containing(ctx, "buildings", [f["geom"][i] for i in missing])
    built = ctx.built.get("buildings")
    for i, at in zip(missing, found, strict=True):
        if at is not None:
            work.fill("building_id", i, built.c["id"][at])
        else:
            work.reject(i, "a house needs its building: no building given or holding its position")
    positions_from_parents(work, ctx)
    default_unset(
        work,
        "grid_code",
        lambda i: _of(ctx, "buildings", "id", f["building_id"][i], "grid_code"),
    )
    default_unset(work, "floor", lambda i: _floor_of(f["room_number"][i]))
    default_unset(work, "use", lambda i: "dwelling")
    default_unset(work, "tenure", lambda i: "other")


def _floor_of(room) -> int:
    digits = re.sub(r"\D", "", str(room or ""))
    return int(digits[:-2]) if len(digits) >= 3 and int(digits[:-2]) <= 200 else 1


def residents(work: Work, ctx: Context) -> None:
    f = work.c
    for i in np.flatnonzero(work.alive()):
        if f["house_id"][i] is None:
            work.reject(i, "a resident needs the house they live in (house)")
    positions_from_parents(work, ctx)
    default_unset(
        work, "grid_code", lambda i: _of(ctx, "houses", "id", f["house_id"][i], "grid_code")
    )
    for i in np.flatnonzero(work.alive()):
        number = f["id_number"][i]
        if number is None or not codes.matches(codes.ID_NUMBER, number):
            continue
        if not codes.valid_id_number(number):
            work.warnings.append(
                (i, "id_number", f"identity number {number[:6]}… fails its check digit")
            )
        f["id_hash"][i] = keyed_hash(number, ctx.hash_key)
        if f["birth_date"][i] is None:
            born = _birth(number)
            if born is None:
                work.reject(i, "the identity number holds no valid birth date")
            else:
                work.fill("birth_date", i, born)
        if f["gender"][i] is None:
            work.fill("gender", i, "M" if int(number[16]) % 2 else "F")
    default_unset(work, "residence_type", lambda i: "registered")


def _birth(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def in_a_grid(work: Work, ctx: Context) -> None:
    """Records of the four facts and the safety map belong to the grid they lie in."""
    positions_from_parents(work, ctx)
    place(work, ctx, "grid_code", "grids", "code", "grid", True)


def organisations(work: Work, ctx: Context) -> None:
    in_a_grid(work, ctx)
    for i in np.flatnonzero(work.alive()):
        code = work.c["credit_code"][i]
        if code and codes.matches(codes.CREDIT_CODE, code) and not codes.valid_credit_code(code):
            work.warnings.append(
                (i, "credit_code", f"credit code {code} fails its check character")
            )


def hazards(work: Work, ctx: Context) -> None:
    in_a_grid(work, ctx)
    f = work.c
    default_unset(
        work, "status", lambda i: "closed" if f["closed_at"][i] is not None else "assigned"
    )
    allocate_codes(work, lambda i: "YH" + f["grid_code"][i] if f["grid_code"][i] else None, 5)


def sensors(work: Work, ctx: Context) -> None:
    in_a_grid(work, ctx)
    default_unset(work, "status", lambda i: "online")
    allocate_codes(work, lambda i: "GZ" + ctx.district_code[:6], 6)


def assets(work: Work, ctx: Context) -> None:
    place(work, ctx, "area_code", "admin_areas", "code", "community", True, _communities)
    place(work, ctx, "grid_code", "grids", "code", "grid", False)
    measure(work, ctx, "land_area_m2", "area")
    default_unset(work, "floor_area_m2", lambda i: 0.0)
    allocate_codes(work, lambda i: "ZC" + ctx.district_code[:6], 4)


def measured(column: str, how: str) -> Callable[[Work, Context], None]:
    return lambda work, ctx: measure(work, ctx, column, how)


BUILDERS: dict[str, Callable[[Work, Context], object]] = {
    "admin_areas": admin_areas,
    "grids": grids,
    "buildings": buildings,
    "addresses": addresses,
    "houses": houses,
    "residents": residents,
    "organisations": organisations,
    "facilities": in_a_grid,
    "landuse_parcels": measured("area_m2", "area"),
    "roads": measured("length_m", "length"),
    "water": measured("area_m2", "area"),
    "parks": measured("area_m2", "area"),
    "hazards": hazards,
    "inspections": in_a_grid,
    "sensors": sensors,
    "assets": assets,
}
