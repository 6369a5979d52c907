"""Reading and writing 四标四实 records: the grid rule, derived fields and codes, optimistic
concurrency, history and the audit entry, all inside the caller's transaction.

"Inside" is decided by geometry: a record belongs to the grid its position lies in (within 1 cm,
so that a point on a shared edge belongs to both). A grid worker may touch a record only if its
stored position lies in one of their grids, and may not move it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from geo.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    OnemapError,
    PreconditionRequired,
    Stale,
    Unauthorised,
)
from geo.models import Base, access_of
from geo.policy import audit
from geo.policy.access import record_scope
from geo.policy.district_scope import sees_code
from geo.policy.masks import keyed_hash
from geo.policy.plan import ReadPlan
from geo.policy.roles import Viewer
from geo.records.types import (
    REFERENCES,
    Change,
    EditRules,
    RecordType,
    check_geometry,
    check_properties,
)
from geo.settings import DISTRICT_COLUMN, STORAGE_SRID, TILE_GEOMETRY
from geo.sql import ident
from geo.sql import table as sql_table

TOLERANCE_DEG = 1e-7  # about 1 cm
#: tables whose rows are records someone owns: a delete may not change them behind their backs
REFERRING_RECORDS = frozenset(
    {
        "addresses",
        "buildings",
        "houses",
        "residents",
        "organisations",
        "facilities",
        "assets",
        "hazards",
        "inspections",
        "sensors",
    }
)
#: a GeoJSON geometry parameter in the storage CRS
GEOMETRY_PARAM = "ST_SetSRID(ST_GeomFromGeoJSON(:g), CAST(:srid AS integer))"


@dataclass
class Record:
    """A record as stored: properties, GeoJSON geometry, version."""

    type: str
    id: int
    version: int
    properties: dict
    geometry: dict | None

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def feature(self, plan: ReadPlan) -> dict:
        """The record as GeoJSON, as ``plan``'s caller may see it."""
        props = plan.properties(self.properties)
        return {"type": "Feature", "id": self.id, "geometry": self.geometry, "properties": props}


class StaleRecord(Stale):
    """The edit was based on an older version; carries the current record (for sync's diff)."""

    def __init__(self, detail: str, current: Record):
        super().__init__(detail, headers={"ETag": current.etag}, current_version=current.version)
        self.current = current


def load(conn: Connection, rtype: RecordType, record_id: int, lock: bool = False) -> Record:
    row = conn.execute(
        text(f"""SELECT to_jsonb(t) - 'geom' - '{TILE_GEOMETRY}' - '{DISTRICT_COLUMN}' AS props, ST_AsGeoJSON(t.geom, 9, 0)::jsonb AS geometry, t.version
                 FROM {sql_table(rtype.name)} t WHERE t.id = :id {"FOR UPDATE" if lock else ""}"""),
        {"id": record_id},
    ).first()
    if row is None:
        raise NotFound(f"no {rtype.name} record {record_id}")
    return Record(rtype.name, record_id, row.version, row.props, row.geometry)


# --- the grid rule ------------------------------------------------------------------------------


def _anchor_sql(geom_sql: str) -> str:
    """A point that stands for the shape: the centroid when it lies inside, else a point on it."""
    return (
        f"(CASE WHEN ST_Within(ST_Centroid({geom_sql}), {geom_sql}) THEN ST_Centroid({geom_sql}) "
        f"ELSE ST_PointOnSurface({geom_sql}) END)"
    )


def locate(conn: Connection, geometry_json: str, own: list[str]) -> str | None:
    """The grid a position lies in, preferring the caller's own grids on a shared edge."""
    return conn.execute(
        text(f"""WITH a AS (SELECT {_anchor_sql(GEOMETRY_PARAM)} AS p)
                 SELECT code FROM grids, a WHERE ST_DWithin(geom, a.p, :tol)
                 ORDER BY code = ANY(:own) DESC, ST_Intersects(geom, a.p) DESC, code LIMIT 1"""),
        {"g": geometry_json, "tol": TOLERANCE_DEG, "own": own, "srid": STORAGE_SRID},
    ).scalar()


def inside_own_grids(conn: Connection, geometry_json: str, own: list[str]) -> bool:
    """The shape's anchor point lies in one of the caller's grids (within 1 cm).

    The anchor, not the whole outline: a building may overhang its grid's edge, and it belongs to
    the grid its centre stands in, the same one its standard code names."""
    return bool(
        conn.execute(
            text(f"""WITH a AS (SELECT {_anchor_sql(GEOMETRY_PARAM)} AS p)
                     SELECT EXISTS (SELECT 1 FROM grids, a WHERE code = ANY(:own) AND ST_DWithin(geom, a.p, :tol))"""),
            {"g": geometry_json, "tol": TOLERANCE_DEG, "own": own, "srid": STORAGE_SRID},
        ).scalar()
    )


def require_scope(viewer: Viewer, write: bool) -> str:
    scope = record_scope(viewer, write)
    if scope is None:
        verb = "edit" if write else "read"
        if viewer.anonymous:
            raise Unauthorised(f"sign in to {verb} 四标四实 records")
        raise Forbidden(f"your role '{viewer.role}' may not {verb} 四标四实 records")
    return scope


def check_owned(conn: Connection, viewer: Viewer, record: Record, write: bool) -> None:
    """The caller may read (or write) this record: it is in their district (else it is as
    missing), and for a grid worker in their grids."""
    scope = require_scope(viewer, write)
    if not sees_code(viewer, record.properties.get("grid_code")):
        raise NotFound(f"no {record.type} record {record.id}")  # another district's: as missing
    if scope == "own" and (
        record.geometry is None
        or not inside_own_grids(conn, json.dumps(record.geometry), sorted(viewer.grids))
    ):
        raise Forbidden(
            f"{record.type} {record.id} lies outside your grids "
            f"({', '.join(sorted(viewer.grids))})",
        )


# --- reading ------------------------------------------------------------------------------------


def read(
    conn: Connection, viewer: Viewer, rtype: RecordType, record_id: int, plan: ReadPlan
) -> Record:
    """The record, if the caller's workspace holds it; an unmasked read (``plan.audited``) is
    written to the audit log with its purpose."""
    record = load(conn, rtype, record_id)
    if (
        plan.district is not None
        and (record.properties.get("grid_code") or "")[:6] != plan.district
    ):
        raise NotFound(f"no {rtype.name} record {record_id}")  # another district's: as missing
    check_owned(conn, viewer, record, write=False)
    if plan.audited:
        audit.record(
            conn,
            viewer,
            "read_personal",
            rtype.name,
            record_id,
            plan.purpose,
            {"fields": sorted(plan.raw)},
        )
    return record


def list_records(
    conn: Connection,
    viewer: Viewer,
    rtype: RecordType,
    limit: int,
    offset: int,
    plan: ReadPlan,
) -> tuple[list[Record], int]:
    """Records the caller may read (their grids, or all), in id order."""
    scope = require_scope(viewer, write=False)
    own = scope == "own" or plan.row_grids is not None
    grids = sorted(plan.row_grids if plan.row_grids is not None else viewer.grids)
    where = "t.grid_code = ANY(:own)" if own else "true"
    if plan.district is not None:  # the caller's district only (migration 0020's column)
        where += f" AND t.{DISTRICT_COLUMN} = :district"
    params = {"own": grids, "limit": limit, "offset": offset, "district": plan.district}
    table = sql_table(rtype.name)
    # the page's ids first: the rows an offset skips are never turned into JSON
    rows = conn.execute(
        text(f"""WITH page AS (SELECT t.id FROM {table} t WHERE {where}
                               ORDER BY t.id LIMIT :limit OFFSET :offset)
                 SELECT t.id, t.version, to_jsonb(t) - 'geom' - '{TILE_GEOMETRY}' - '{DISTRICT_COLUMN}' AS props,
                        ST_AsGeoJSON(t.geom, 9, 0)::jsonb AS geometry
                 FROM {table} t JOIN page USING (id) ORDER BY t.id"""),
        params,
    ).all()
    total = conn.execute(text(f"SELECT count(*) FROM {table} t WHERE {where}"), params).scalar_one()
    records = [Record(rtype.name, r.id, r.version, r.props, r.geometry) for r in rows]
    if plan.audited and records:
        audit.record(
            conn,
            viewer,
            "read_personal",
            rtype.name,
            None,
            plan.purpose,
            {"ids": [r.id for r in records], "fields": sorted(plan.raw)},
        )
    return records, int(total)


# --- writing ------------------------------------------------------------------------------------


def apply(
    conn: Connection,
    viewer: Viewer,
    change: Change,
    rules: EditRules,
    review_id: int | None = None,
    actor: Viewer | None = None,
) -> Record | None:
    """Create, replace, update (partial), delete or restore one record; return its new state.

    Everything happens on ``conn``: the caller's transaction (or savepoint) commits or rolls back
    the change, its history row and its audit entry together.
    """
    rtype, action, record_id, if_match = (
        change.rtype,
        change.action,
        change.record_id,
        change.if_match,
    )
    properties, geometry = change.properties, change.geometry
    scope = require_scope(viewer, write=True)
    own = sorted(viewer.grids)
    current: Record | None = None
    if action != "create":
        if record_id is None:
            raise BadRequest("which record? an id is needed")
        current = load(conn, rtype, record_id, lock=True)
        check_owned(conn, viewer, current, write=True)
        if if_match is None:
            raise PreconditionRequired(
                f"send If-Match with the ETag you read (currently {current.etag}) so no edit is lost",
            )
        if if_match != current.version:
            raise StaleRecord(
                f"{rtype.name} {record_id} is at version {current.version}, "
                f"you edited version {if_match}: read it again and re-apply your change",
                current,
            )
    if action == "delete":
        _write_delete(conn, rtype, current)
        _count(conn, rtype, -1)
        _remember(
            conn,
            actor or viewer,
            rtype,
            current.id,
            current.version,
            "delete",
            current,
            None,
            review_id,
        )
        audit.record(
            conn,
            actor or viewer,
            "delete",
            rtype.name,
            current.id,
            detail={"version": current.version},
        )
        return None

    complete = action in ("create", "replace", "restore")
    props = check_properties(rtype, properties if properties is not None else {}, complete=complete)
    geom = check_geometry(rtype, geometry) if (geometry is not None or action != "update") else None
    if action == "update":
        merged = {k: current.properties.get(k) for k in rtype.editable} | props
        geometry_json = (
            json.dumps(geometry) if geometry is not None else json.dumps(current.geometry)
        )
    else:
        merged = {k: props.get(k, _default(rtype, k)) for k in rtype.editable}
        geometry_json = json.dumps(geometry) if geom is not None else None
    _check_references(conn, rtype, merged, current, own if scope == "own" else None)
    if rtype.parent is not None:
        geometry_json = _parent_position(conn, rtype, merged)
    grid = locate(conn, geometry_json, own)
    if grid is None:
        raise Invalid("the position lies outside the district: no standard grid contains it")
    if not sees_code(viewer, grid):
        raise Forbidden(
            f"grid {grid} is in district {grid[:6]}; you work in district {viewer.district}"
        )
    # locate() prefers the caller's grids on a shared edge, so this is the grid rule itself
    if scope == "own" and grid not in own:
        where = "be moved" if action != "create" else "be placed"
        raise Forbidden(
            f"the {rtype.name[:-1]} would lie in grid {grid}, outside your grids "
            f"({', '.join(own)}): it may not {where} there",
        )
    _derive(conn, rtype, merged, props, grid, rules.id_hash_key)
    new_id = _write(conn, rtype, action, current, merged, geometry_json, grid)
    if action == "create":
        _count(conn, rtype, +1)
    after = load(conn, rtype, new_id)
    verb = "create" if action == "create" else action
    _remember(conn, actor or viewer, rtype, new_id, after.version, verb, current, after, review_id)
    audit.record(
        conn,
        actor or viewer,
        verb,
        rtype.name,
        new_id,
        detail={"version": after.version, "changed": _changed(current, after)},
    )
    return after


def _default(rtype: RecordType, name: str):
    column = rtype.table.c[name]
    if column.server_default is not None:
        return {"{}": [], "false": False, "true": True, "0": 0}.get(str(column.server_default.arg))
    return None


def _check_references(
    conn: Connection,
    rtype: RecordType,
    merged: dict,
    current: Record | None,
    own: list[str] | None,
) -> None:
    """Each reference names an existing record; a grid worker may point a record only at records
    in their own grids (a reference they set, not one an administrator set before them), and
    learns nothing about a record outside them: it is "not in your grids", existing or not."""
    for field, table in REFERENCES.items():
        value = merged.get(field)
        if field not in rtype.editable or value is None:
            continue
        unchanged = current is not None and current.properties.get(field) == value
        if own is not None and not unchanged:
            found = conn.execute(
                text(f"SELECT 1 FROM {sql_table(table)} WHERE id = :id AND grid_code = ANY(:own)"),
                {"id": value, "own": own},
            ).first()
            if found is None:
                raise Forbidden(
                    f"{field} {value}: no {table[:-1]} of that id in your grids "
                    f"({', '.join(own)}): a record may refer only to records in your grids"
                )
            continue
        found = conn.execute(
            text(f"SELECT 1 FROM {sql_table(table)} WHERE id = :id"), {"id": value}
        ).first()
        if found is None:
            raise Invalid(f"{field} {value}: there is no such {table[:-1]}")


def _referrers(conn: Connection, rtype: RecordType, record_id: int) -> dict[str, int]:
    """How many records of each table refer to this one (foreign keys, from the models)."""
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != rtype.name or table.name not in REFERRING_RECORDS:
                continue
            # the key referred to may be the record's code, not its id
            key = (
                ":id"
                if fk.column.name == "id"
                else f"(SELECT {ident(fk.column.name)} FROM {sql_table(rtype.name)} WHERE id = :id)"
            )
            n = conn.execute(
                text(
                    f"SELECT count(*) FROM {sql_table(table.name)} "
                    f"WHERE {ident(fk.parent.name)} = {key}"
                ),
                {"id": record_id},
            ).scalar_one()
            if n:
                counts[table.name] = counts.get(table.name, 0) + n
    return counts


def _parent_position(conn: Connection, rtype: RecordType, merged: dict) -> str:
    if rtype.parent == "house":
        sql, params = (
            "SELECT ST_AsGeoJSON(geom, 9, 0) FROM houses WHERE id = :id",
            {"id": merged["house_id"]},
        )
    elif merged.get("address_id") is not None:
        sql = """SELECT ST_AsGeoJSON(coalesce(
                     (SELECT a.geom FROM addresses a WHERE a.id = :a AND a.building_id = :b),
                     (SELECT ST_PointOnSurface(geom) FROM buildings WHERE id = :b)), 9, 0)"""
        params = {"a": merged["address_id"], "b": merged["building_id"]}
    else:
        sql = "SELECT ST_AsGeoJSON(ST_PointOnSurface(geom), 9, 0) FROM buildings WHERE id = :b"
        params = {"b": merged["building_id"]}
    return conn.execute(text(sql), params).scalar_one()


def _derive(
    conn: Connection, rtype: RecordType, merged: dict, sent: dict, grid: str, hash_key: str
) -> None:
    """Codes that nest in the area the record lies in (allocated when left out), keyed hashes."""
    if rtype.name == "residents":
        merged["id_hash"] = keyed_hash(merged["id_number"], hash_key)
    if rtype.name == "addresses":
        community = grid[:12]
        if "area_code" not in sent:
            merged["area_code"] = community
        if merged["area_code"] != community:
            raise Invalid(
                f"the address lies in community {community}, but its area_code says "
                f"{merged['area_code']}: codes must agree with where it lies",
            )
        _nested_code(conn, rtype, merged, sent, community, 8, f"its community's code {community}")
    if rtype.name == "buildings":
        _nested_code(
            conn, rtype, merged, sent, grid, 4, f"the code of the grid it stands in ({grid})"
        )


def _nested_code(
    conn: Connection,
    rtype: RecordType,
    merged: dict,
    sent: dict,
    prefix: str,
    digits: int,
    prefix_is: str,
) -> None:
    """A standard code that extends the code of the area the record lies in: allocated when
    left out (or when a moved record's old code names another area), else checked."""
    code = merged.get("code")
    length = len(prefix) + digits
    if "code" not in sent and (code is None or not code.startswith(prefix)):
        merged["code"] = _allocate(conn, rtype.name, prefix, digits)
    elif not (code and len(code) == length and code.isdigit() and code.startswith(prefix)):
        raise Invalid(
            f"{rtype.name[:-1]} code {code} must be {length} digits beginning with {prefix_is}"
        )


def _allocate(conn: Connection, table: str, prefix: str, digits: int) -> str:
    """The next free code under a prefix; concurrent writers queue on an advisory lock."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{table}:{prefix}"})
    last = conn.execute(
        text(
            f"SELECT max(right(code, CAST(:digits AS integer)))::bigint FROM {sql_table(table)} "
            "WHERE code LIKE :p"
        ),
        {"p": prefix + "%", "digits": digits},
    ).scalar()
    nxt = (last or 0) + 1
    if nxt >= 10**digits:
        raise Conflict(f"no free code left under {prefix}")
    return prefix + str(nxt).zfill(digits)


def _write(
    conn: Connection,
    rtype: RecordType,
    action: str,
    current: Record | None,
    merged: dict,
    geometry_json: str,
    grid: str,
) -> int:
    columns = [c for c in rtype.editable if c in merged] + (
        ["id_hash"] if rtype.name == "residents" else []
    )
    params = {c: merged[c] for c in columns} | {
        "g": geometry_json,
        "grid": grid,
        "srid": STORAGE_SRID,
    }
    names = {c: ident(c) for c in columns}  # checked, so also usable as parameter names
    casts = {c: f"CAST(:{c} AS {_sql_type(rtype, c)})" for c in columns}
    table = sql_table(rtype.name)
    geom_sql = GEOMETRY_PARAM
    if rtype.geometry == "Polygon":
        geom_sql = f"ST_Force2D({geom_sql})"
    try:
        with conn.begin_nested():
            if action == "create":
                sql = (
                    f"INSERT INTO {table} ({', '.join(names[c] for c in columns)}, geom, grid_code) "
                    f"VALUES ({', '.join(casts[c] for c in columns)}, {geom_sql}, :grid) RETURNING id"
                )
                return conn.execute(text(sql), params).scalar_one()
            sets = ", ".join(f"{names[c]} = {casts[c]}" for c in columns)
            sql = f"UPDATE {table} SET {sets}, geom = {geom_sql}, grid_code = :grid WHERE id = :id RETURNING id"
            return conn.execute(text(sql), params | {"id": current.id}).scalar_one()
    except DBAPIError as exc:
        raise _refusal(exc, rtype) from exc


def _count(conn: Connection, rtype: RecordType, delta: int) -> None:
    """Keep the catalogue's feature count true as records come and go (same transaction)."""
    counted(conn, rtype.name, delta)


def counted(conn: Connection, table: str, delta: int) -> None:
    """The catalogue's feature count of ``table`` moved by ``delta``, in the caller's
    transaction: every path that adds or removes rows of a layer says so (records, hazards
    reported, inspections recorded)."""
    conn.execute(
        text("UPDATE layer_catalogue SET feature_count = feature_count + :d WHERE table_name = :t"),
        {"d": delta, "t": table},
    )


def _write_delete(conn: Connection, rtype: RecordType, current: Record) -> None:
    """Delete, unless another record refers to this one: the database would clear or refuse
    that reference, changing a record (maybe in another grid) without its owner or a history
    row. The caller is told what to unlink first."""
    referrers = _referrers(conn, rtype, current.id)
    if referrers:
        listed = ", ".join(f"{n} {table}" for table, n in sorted(referrers.items()))
        raise Conflict(
            f"{rtype.name[:-1]} {current.id} cannot be deleted while other records refer to it "
            f"({listed}): point them elsewhere, or delete them, first"
        )
    try:
        with conn.begin_nested():
            conn.execute(
                text(f"DELETE FROM {sql_table(rtype.name)} WHERE id = :id"), {"id": current.id}
            )
    except DBAPIError as exc:
        raise _refusal(exc, rtype) from exc


def _sql_type(rtype: RecordType, column: str) -> str:
    if column == "aliases":
        return "text[]"
    return rtype.table.c[column].type.compile(dialect=postgresql.dialect())


class PersonalConflict(Conflict):
    """The record collides with another on a personal field (an identity number). Whether, and
    where, such a record exists is itself personal data: the message says neither, and a grid
    worker's change is held for a reviewer instead (geo.records.edits)."""

    def __init__(self):
        super().__init__(
            "this person cannot be registered as given: a community reviewer will check the "
            "identity number"
        )


def _refusal(exc: DBAPIError, rtype: RecordType) -> OnemapError:
    """A database refusal, in words a person can act on (and no more than they may know)."""
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    code = getattr(exc.orig, "sqlstate", None) or ""
    if code == "23503":  # foreign key
        return Conflict(
            f"other records still refer to this one ({constraint}): move or delete them first",
        )
    personal = access_of(rtype.name).personal
    if code == "23505" and any(f"_{field}_" in f"_{constraint}_" for field in personal):
        return PersonalConflict()
    if code == "23505":
        return Conflict(f"a record with the same unique value exists already ({constraint})")
    if code.startswith("23"):
        return Invalid(f"the record breaks the rule {constraint or code}")
    return Invalid(f"the database refused the record: {str(exc.orig).splitlines()[0]}")


def _remember(
    conn: Connection,
    viewer: Viewer,
    rtype: RecordType,
    record_id: int,
    version: int,
    action: str,
    before: Record | None,
    after: Record | None,
    review_id: int | None,
) -> None:
    conn.execute(
        text("""INSERT INTO record_history (record_type, record_id, version, action, actor, role,
                                            before, after, changed, review_id)
                VALUES (:t, :id, :v, :a, :actor, :role, CAST(:b AS jsonb), CAST(:af AS jsonb), :changed, :rid)"""),
        {
            "t": rtype.name,
            "id": record_id,
            "v": version,
            "a": action,
            "actor": viewer.username,
            "role": viewer.role,
            "b": _state_json(before),
            "af": _state_json(after),
            "changed": _changed(before, after),
            "rid": review_id,
        },
    )


def _state_json(record: Record | None) -> str | None:
    if record is None:
        return None
    return json.dumps(
        {"properties": record.properties, "geometry": record.geometry}, ensure_ascii=False
    )


def _changed(before: Record | None, after: Record | None) -> list[str]:
    if before is None or after is None:
        return []
    keys = set(before.properties) | set(after.properties)
    out = sorted(
        k
        for k in keys - {"version", "updated_at", "created_at"}
        if before.properties.get(k) != after.properties.get(k)
    )
    if before.geometry != after.geometry:
        out.append("geometry")
    return out
