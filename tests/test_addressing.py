"""Standard addresses: normalising address text, its SQL twin, and set-based geocoding tier by tier."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from geo.addressing import geocode, normalise

SAMPLES = [
    ("江苏省南京市溧水区永阳街道石坊社区秀堰路１２号", "永阳街道石坊社区秀堰路12号"),
    ("南京市 溧水区\u3000秀堰路 3 号", "秀堰路3号"),
    ("江苏南京溧水区秀堰路3号", "秀堰路3号"),
    ("溧水县秀堰路3号", "秀堰路3号"),  # the county's name before 2013
    ("南京路5号", "南京路5号"),  # a road called 南京路 keeps its name
    ("和坊新村1栋", "和坊新村1幢"),
    ("和坊新村1号楼", "和坊新村1幢"),
    ("和坊新村1号幢", "和坊新村1幢"),
    ("金湖广场Ａ座", "金湖广场a幢"),
    ("", ""),
    (None, ""),
]


@pytest.mark.parametrize(("raw", "expected"), SAMPLES)
def test_normalise_folds_the_ways_people_write_an_address(raw, expected):
    assert normalise(raw) == expected


def test_the_sql_twin_agrees_with_python_on_every_standard_name(engine):
    with engine.connect() as conn:
        names = (
            conn.execute(
                text(
                    "SELECT full_name FROM addresses UNION ALL SELECT unnest(aliases) FROM addresses"
                )
            )
            .scalars()
            .all()
        )
        names += [raw for raw, _ in SAMPLES if raw is not None] + ["It's ＡＢＣ\t1栋"]
        sql = (
            conn.execute(
                text("SELECT onemap_normalise_address(n) FROM unnest(CAST(:names AS text[])) n"),
                {"names": names},
            )
            .scalars()
            .all()
        )
    assert len(names) > 5_000
    assert [normalise(n) for n in names] == sql


@pytest.fixture(scope="module")
def unit_address(engine):
    """A unit-level address whose road + door + estate + building + unit is unique."""
    with engine.connect() as conn:
        return conn.execute(
            text("""
            SELECT a.id, a.full_name, s.name AS street, c.name AS community,
                   a.road || a.door_number || a.estate || a.building_number || a.unit_number AS tail
            FROM addresses a
            JOIN admin_areas c ON c.code = a.area_code
            JOIN admin_areas s ON s.code = c.parent_code
            WHERE a.level = 'unit' AND (SELECT count(*) FROM addresses b
                  WHERE b.road = a.road AND b.door_number = a.door_number AND b.estate = a.estate
                    AND b.building_number = a.building_number
                    AND b.unit_number = a.unit_number) = 1
            ORDER BY a.id LIMIT 1""")
        ).one()


def test_geocode_matches_tier_by_tier_and_says_why_not(engine, unit_address):
    a = unit_address
    with engine.connect() as conn:
        other_street = conn.execute(
            text(
                "SELECT name FROM admin_areas WHERE level = 2 AND name <> :s ORDER BY code LIMIT 1"
            ),
            {"s": a.street},
        ).scalar_one()
        shared_alias = conn.execute(
            text("""SELECT n FROM (SELECT unnest(aliases) n FROM addresses) s
                    GROUP BY n HAVING count(*) > 1 ORDER BY n LIMIT 1""")
        ).scalar_one()
        texts = [
            (11, a.full_name),  # exact
            (12, "江苏省" + a.full_name.replace("幢", "栋")),  # normalised
            (13, a.street + a.tail),  # without its community
            (14, a.tail),  # no area names at all
            (15, other_street + a.tail),  # names an area the address is not in
            (16, shared_alias),  # an alias many addresses share
            (17, "溧水区月球路1号"),
        ]
        found = geocode(conn, texts)
    assert [g.key for g in found] == [11, 12, 13, 14, 15, 16, 17]
    by_key = {g.key: g for g in found}
    for key, tier in (
        (11, "exact"),
        (12, "normalised"),
        (13, "without_area"),
        (14, "without_area"),
    ):
        assert (by_key[key].address_id, by_key[key].tier) == (a.id, tier), key
    assert not by_key[15].matched and "no standard address matches" in by_key[15].reason
    assert not by_key[16].matched and by_key[16].reason.startswith("ambiguous: matches")
    assert not by_key[17].matched


def test_geocode_is_set_based_whatever_the_batch_size(engine):
    """The same number of statements for 10 texts as for 600: no query per row."""
    with engine.connect() as conn:
        names = (
            conn.execute(text("SELECT full_name FROM addresses ORDER BY id LIMIT 600"))
            .scalars()
            .all()
        )
    counts = []
    for size in (10, 600):
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany, seen=statements):
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            with engine.connect() as conn:
                found = geocode(conn, list(enumerate(names[:size])))
                conn.rollback()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert all(g.matched and g.tier == "exact" for g in found)
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_a_misspelt_address_resolves_by_trigrams_or_says_why_not(engine):
    """One wrong character: the most similar standard address, if clearly the most similar."""
    with engine.connect() as conn:
        aid, name = conn.execute(
            text("SELECT id, full_name FROM addresses WHERE level = 'door' ORDER BY id LIMIT 1")
        ).one()
    road_char = next(i for i, ch in enumerate(name) if i > 8 and not ch.isdigit())
    misspelt = (
        name[:road_char] + ("甲" if name[road_char] != "甲" else "乙") + name[road_char + 1 :]
    )
    with engine.connect() as conn:
        found, nonsense = geocode(conn, [(1, misspelt), (2, "完全不存在的地方九九九号")])
        hashjoin = conn.execute(text("SHOW enable_hashjoin")).scalar()
        conn.rollback()
    assert found.address_id == aid and found.tier == "fuzzy"
    assert not nonsense.matched and "no standard address matches" in nonsense.reason
    assert hashjoin == "on"  # the caller's transaction goes on with the planner as it was


def test_every_tier_probes_an_index(engine):
    """Each tier's query can reach addresses through its index (the small test city is cheap to
    scan, so scanning is ruled out here to see that the index serves the query as written)."""
    from geo import addressing

    with engine.connect() as conn:
        conn.execute(
            text("""CREATE TEMPORARY TABLE _geocode (key bigint PRIMARY KEY, raw text, norm text,
                    tail text, area_patterns text[], address_id bigint, tier text, reason text)""")
        )
        conn.execute(
            text("""INSERT INTO _geocode (key, raw, norm, tail, area_patterns)
                    VALUES (1, '溧水区某路1号', '某路1号', '某路1号', '{}')""")
        )
        conn.execute(text("ANALYZE _geocode"))
        conn.execute(text("SET LOCAL enable_hashjoin = off"))
        conn.execute(text("SET LOCAL enable_mergejoin = off"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for sql in (
            addressing._TIER_EXACT,
            addressing._TIER_NORMALISED,
            addressing._TIER_WITHOUT_AREA,
        ):
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql.text)))
            assert "Seq Scan on addresses" not in plan, plan
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text("EXPLAIN " + addressing._TIER_FUZZY.text), {"at_least": 0.6, "lead": 0.1}
            )
        )
        assert "ix_addresses_trigrams" in plan, plan
        conn.rollback()
