"""Standard addresses (标准地址): normalise address text and match it to the address library.

Departmental lists name places by address far more often than by coordinates, and each writes the
same address its own way: full-width digits typed on a Chinese keyboard (１２号), the province,
city and district spelt out or not (江苏省南京市溧水区…), 栋 / 号楼 / 座 for the standard 幢, stray
spaces. :func:`normalise` folds those differences away; :func:`geocode` matches a batch of texts
against the library (``addresses.full_name`` and ``addresses.aliases``) in SQL, a few set-based
queries for the whole batch whatever its size:

1. exact: the text is a standard full name or alias as written;
2. normalised: equal after :func:`normalise` on both sides (the database side uses
   ``onemap_normalise_address``, its SQL twin, created by migration 0003);
3. without area names: the text minus its leading street/town and community/village names equals
   an address's road + door plate + estate + building + unit, and every area name the text gave
   is in that address's full name;
4. fuzzy: a misspelt text (a wrong character or two) takes the standard address whose normalised
   full name is most similar by trigrams (pg_trgm), when it is similar enough (0.6) and clearly
   ahead of the next (by 0.1).

Every tier is an index lookup (migration 0008): one text resolves in milliseconds.

A text that matches more than one address at the first tier that finds it is ambiguous and is not
guessed at; a text that matches nothing says so. Both come back with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

#: full-width ASCII (U+FF01..U+FF5E) folds to ASCII; U+3000 is the full-width space
FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F))
HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F))
#: removed wherever they occur (ASCII and full-width spaces, tabs, line breaks, no-break space)
SPACES = " \t\r\n\u00a0\u3000"
#: the province / city / district written before a Lishui address (溧水县 until 2013); the short
#: forms only where the next name follows, so that a road named 南京路 keeps its name
PREFIX = r"^(中国)?(江苏省|江苏(?=南京))?(南京市|南京(?=溧水))?(溧水区|溧水县)?"
#: building variants: 3栋, 3号楼, 3号幢, A座 are all the standard 3幢 / a幢
BUILDING = r"([0-9a-z]+)(栋|号楼|号幢|座)"

_FOLD = str.maketrans(FULL_WIDTH, HALF_WIDTH, SPACES)
_PREFIX_RE = re.compile(PREFIX)
_BUILDING_RE = re.compile(BUILDING)


def normalise(value: str | None) -> str:
    """The comparison key of an address text (not for display).

    Full-width ASCII to half-width, spaces removed, Latin letters lower-cased, the leading
    province/city/district dropped, building variants written 幢. The SQL twin
    ``onemap_normalise_address`` applies the same steps in the same order.
    """
    if value is None:
        return ""
    folded = value.translate(_FOLD).lower()
    folded = _PREFIX_RE.sub("", folded, count=1)
    return _BUILDING_RE.sub(r"\1幢", folded)


def normalise_sql_function() -> str:
    """``CREATE FUNCTION onemap_normalise_address``: the SQL twin of :func:`normalise`.

    Kept beside the Python so that the two are read (and changed) together; migration 0003 runs
    the text as it was when the migration was written.
    """

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    return f"""
CREATE OR REPLACE FUNCTION onemap_normalise_address(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(
               regexp_replace(
                   lower(translate(coalesce(value, ''), {literal(FULL_WIDTH + SPACES)},
                                   {literal(HALF_WIDTH)})),
                   {literal(PREFIX)}, ''),
               {literal(BUILDING)}, '\\1幢', 'g')
$$;
"""


@dataclass(frozen=True)
class Geocoded:
    """One text's outcome: the matched standard address, or why there is none."""

    key: int
    text: str
    address_id: int | None = None
    code: str | None = None
    full_name: str | None = None
    lon: float | None = None
    lat: float | None = None
    tier: str | None = None  # exact, normalised, without_area, fuzzy
    reason: str | None = None

    @property
    def matched(self) -> bool:
        return self.address_id is not None


# each tier joins the batch to the library through an index (migration 0008), so one text costs
# a few index probes, not a pass over 100,000 names
_TIER_EXACT = text("""
    SELECT q.key, a.id FROM _geocode q JOIN addresses a ON a.full_name = q.raw
    WHERE q.address_id IS NULL
    UNION
    SELECT q.key, a.id FROM _geocode q JOIN addresses a ON a.aliases @> ARRAY[q.raw]
    WHERE q.address_id IS NULL
""")
_TIER_NORMALISED = text("""
    SELECT q.key, a.id FROM _geocode q
    JOIN addresses a ON onemap_address_keys(a.full_name, a.aliases) @> ARRAY[q.norm]
    WHERE q.address_id IS NULL AND q.norm <> ''
""")
_TIER_WITHOUT_AREA = text("""
    SELECT q.key, a.id FROM _geocode q
    JOIN addresses a ON onemap_address_tail(
        a.road, a.door_number, a.estate, a.building_number, a.unit_number) = q.tail
    WHERE q.address_id IS NULL AND q.tail <> ''
      AND onemap_normalise_address(a.full_name) LIKE ALL (q.area_patterns)
""")
#: a misspelt text (a wrong character or two): the most similar normalised full name by
#: trigrams, taken only if it is similar enough and clearly ahead of the next one
FUZZY_AT_LEAST, FUZZY_LEAD = 0.6, 0.1
_TIER_FUZZY = text("""
    SELECT q.key, best.id FROM _geocode q
    CROSS JOIN LATERAL (
        SELECT a.id, similarity(onemap_normalise_address(a.full_name), q.norm) AS score,
               lead(similarity(onemap_normalise_address(a.full_name), q.norm))
                   OVER (ORDER BY similarity(onemap_normalise_address(a.full_name), q.norm) DESC)
                   AS runner_up
        FROM addresses a
        WHERE onemap_normalise_address(a.full_name) % q.norm
        ORDER BY score DESC LIMIT 1
    ) best
    WHERE q.address_id IS NULL AND q.norm <> ''
      AND best.score >= :at_least AND best.score - coalesce(best.runner_up, 0) >= :lead
""")


def _area_names(conn: Connection) -> re.Pattern | None:
    """A pattern for one leading street/town or community/village name (longest first)."""
    rows = conn.execute(text("SELECT DISTINCT name FROM admin_areas WHERE level > 1")).scalars()
    names = sorted({normalise(n) for n in rows if n}, key=len, reverse=True)
    if not names:
        return None
    return re.compile("|".join(re.escape(n) for n in names))


def _strip_areas(norm: str, names: re.Pattern | None) -> tuple[str, list[str]]:
    """The text after its leading area names, and the names it gave."""
    given: list[str] = []
    while names is not None and (found := names.match(norm)):
        given.append(found.group(0))
        norm = norm[found.end() :]
    return norm, given


def _like_pattern(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def geocode(conn: Connection, texts: Sequence[tuple[int, str]]) -> list[Geocoded]:
    """Match ``(key, text)`` pairs to standard addresses, set-based, tier by tier.

    Returns one :class:`Geocoded` per pair, in the input order. Runs in the caller's transaction
    (a temporary table dropped at commit), so it can sit inside an ingest.
    """
    if not texts:
        return []
    names = _area_names(conn)
    conn.execute(text("DROP TABLE IF EXISTS _geocode"))
    conn.execute(
        text("""CREATE TEMPORARY TABLE _geocode (key bigint PRIMARY KEY, raw text, norm text,
                tail text, area_patterns text[], address_id bigint, tier text, reason text)
                ON COMMIT DROP""")
    )
    raw_conn = conn.connection.dbapi_connection
    with (
        raw_conn.cursor() as cur,
        cur.copy("COPY _geocode (key, raw, norm, tail, area_patterns) FROM STDIN") as copy,
    ):
        for key, raw in texts:
            norm = normalise(raw)
            tail, given = _strip_areas(norm, names)
            copy.write_row([int(key), raw, norm, tail, [_like_pattern(n) for n in given]])
    conn.execute(text("ANALYZE _geocode"))
    # every tier is an index probe per text; a hash join would compute the normalised forms of the
    # whole library instead (the planner cannot see what the normaliser costs)
    conn.execute(
        text("""SELECT set_config('pg_trgm.similarity_threshold', :t, true),
                       set_config('enable_hashjoin', 'off', true),
                       set_config('enable_mergejoin', 'off', true)"""),
        {"t": str(FUZZY_AT_LEAST)},
    )
    for tier, sql in (
        ("exact", _TIER_EXACT),
        ("normalised", _TIER_NORMALISED),
        ("without_area", _TIER_WITHOUT_AREA),
        ("fuzzy", _TIER_FUZZY),
    ):
        found: dict[int, set[int]] = {}
        params = {"at_least": FUZZY_AT_LEAST, "lead": FUZZY_LEAD}
        for key, address_id in conn.execute(sql, params if tier == "fuzzy" else {}):
            found.setdefault(key, set()).add(address_id)
        if not found:
            continue
        unique = [
            {"k": k, "a": next(iter(ids)), "t": tier} for k, ids in found.items() if len(ids) == 1
        ]
        ambiguous = [
            {"k": k, "r": f"ambiguous: matches {len(ids)} standard addresses ({tier})"}
            for k, ids in found.items()
            if len(ids) > 1
        ]
        if unique:
            conn.execute(
                text("UPDATE _geocode SET address_id = :a, tier = :t WHERE key = :k"), unique
            )
        if ambiguous:
            # settled: an ambiguous text is not retried at a looser tier, where it would only
            # match more addresses
            conn.execute(
                text("UPDATE _geocode SET address_id = -1, reason = :r WHERE key = :k"), ambiguous
            )
    result = conn.execute(
        text("""SELECT q.key, q.raw, q.norm, q.tier, q.reason, a.id, a.code, a.full_name,
                       ST_X(a.geom), ST_Y(a.geom)
                FROM _geocode q LEFT JOIN addresses a ON a.id = q.address_id""")
    ).all()
    by_key: dict[int, Geocoded] = {}
    for key, raw, norm, tier, reason, aid, code, full_name, lon, lat in result:
        if aid is not None:
            by_key[key] = Geocoded(key, raw, aid, code, full_name, lon, lat, tier)
        elif reason:
            by_key[key] = Geocoded(key, raw, reason=reason)
        elif not norm:
            by_key[key] = Geocoded(key, raw, reason="empty address")
        else:
            by_key[key] = Geocoded(
                key, raw, reason=f"no standard address matches '{raw}' (normalised '{norm}')"
            )
    conn.execute(text("DROP TABLE _geocode"))
    conn.execute(  # the caller's transaction goes on with the planner as it was
        text("""SELECT set_config('enable_hashjoin', 'on', true),
                       set_config('enable_mergejoin', 'on', true)""")
    )
    return [by_key[int(key)] for key, _ in texts]
