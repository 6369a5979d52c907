"""A corpus of bad input to the records API: every case is answered 4xx with problem+json, and the
database is row-for-row what it was before."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from geo.records import TYPES
from tests.conftest import snapshot

PROBLEM = "application/problem+json"
INJECTIONS = (
    "x'; DROP TABLE residents; --",
    'a" OR "1"="1',
    "1; SELECT pg_sleep(5)",
    "名字/* comment */",
    "<script>alert(1)</script>",
    "Robert\\'); --",
)


@pytest.fixture(scope="module")
def ctx(engine, people):
    with engine.connect() as conn:
        grid = conn.execute(
            text("""SELECT grid_code FROM organisations GROUP BY grid_code
                                    ORDER BY count(*) DESC LIMIT 1""")
        ).scalar()
    token = people.token("t_bad_worker", "grid_worker", (grid,))
    with engine.begin() as conn:
        ids = {
            t: conn.execute(
                text(f"SELECT id FROM {t} WHERE grid_code = :g ORDER BY id LIMIT 1"), {"g": grid}
            ).scalar()
            for t in TYPES
        }
        versions = {
            t: conn.execute(text(f"SELECT version FROM {t} WHERE id = :i"), {"i": ids[t]}).scalar()
            for t in TYPES
        }
        point = json.loads(
            conn.execute(
                text("SELECT ST_AsGeoJSON(ST_PointOnSurface(geom)) FROM grids WHERE code = :g"),
                {"g": grid},
            ).scalar()
        )
        busy_building = conn.execute(
            text("""SELECT building_id FROM houses WHERE grid_code = :g
                                             GROUP BY building_id LIMIT 1"""),
            {"g": grid},
        ).scalar()
    return {
        "token": token,
        "ids": ids,
        "versions": versions,
        "point": point,
        "building": busy_building,
    }


def org(ctx, **props):
    base = {"name": "测试单位", "credit_code": "91320117MA1N2B3C4Y", "kind": "shop"}
    return {"type": "Feature", "properties": base | props, "geometry": ctx["point"]}


def point(lon, lat):
    return {"type": "Point", "coordinates": [lon, lat]}


def cases(ctx):
    """(name, method, path, extra headers, body) — body bytes or a JSON-able value."""
    ids, v = ctx["ids"], ctx["versions"]
    lon, lat = ctx["point"]["coordinates"]
    match = {t: {"If-Match": f'"v{v[t]}"'} for t in TYPES}
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[lon, lat], [lon + 1e-4, lat + 1e-4], [lon + 1e-4, lat], [lon, lat + 1e-4], [lon, lat]]
        ],
    }
    out = [
        (
            "malformed JSON",
            "POST",
            "/records/organisations",
            {},
            b'{"type": "Feature", "properties": {',
        ),
        ("JSON array, not an object", "POST", "/records/organisations", {}, [1, 2, 3]),
        (
            "not a Feature",
            "POST",
            "/records/organisations",
            {},
            {"type": "FeatureCollection", "features": []},
        ),
        (
            "properties as text",
            "POST",
            "/records/organisations",
            {},
            {"type": "Feature", "properties": "x", "geometry": None},
        ),
        (
            "floors as text",
            "PATCH",
            f"/records/buildings/{ids['buildings']}",
            match["buildings"],
            {"properties": {"floors": "three"}},
        ),
        (
            "height as boolean",
            "PATCH",
            f"/records/buildings/{ids['buildings']}",
            match["buildings"],
            {"properties": {"height_m": True}},
        ),
        (
            "employees as fraction",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            match["organisations"],
            {"properties": {"employees": 3.5}},
        ),
        (
            "birth date not a date",
            "PATCH",
            f"/records/residents/{ids['residents']}",
            match["residents"],
            {"properties": {"birth_date": "yesterday"}},
        ),
        (
            "unknown field",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            match["organisations"],
            {"properties": {"salary": 1}},
        ),
        (
            "server field",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            match["organisations"],
            {"properties": {"grid_code": "320117001001001"}},
        ),
        (
            "missing required field",
            "POST",
            "/records/organisations",
            {},
            {"type": "Feature", "properties": {"name": "x"}, "geometry": ctx["point"]},
        ),
        (
            "identity number check character",
            "PATCH",
            f"/records/residents/{ids['residents']}",
            match["residents"],
            {"properties": {"id_number": "320117199001010011"}},
        ),
        (
            "phone malformed",
            "PATCH",
            f"/records/residents/{ids['residents']}",
            match["residents"],
            {"properties": {"phone": "12345"}},
        ),
        (
            "credit code check character",
            "POST",
            "/records/organisations",
            {},
            org(ctx, credit_code="91320117MA1N2B3C40"),
        ),
        (
            "self-intersecting polygon",
            "PATCH",
            f"/records/buildings/{ids['buildings']}",
            match["buildings"],
            {"geometry": bowtie},
        ),
        (
            "unclosed ring",
            "PATCH",
            f"/records/buildings/{ids['buildings']}",
            match["buildings"],
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[lon, lat], [lon + 1e-4, lat], [lon, lat + 1e-4]]],
                }
            },
        ),
        (
            "one coordinate",
            "POST",
            "/records/organisations",
            {},
            org(ctx) | {"geometry": {"type": "Point", "coordinates": [lon]}},
        ),
        (
            "coordinates as text",
            "POST",
            "/records/organisations",
            {},
            org(ctx) | {"geometry": {"type": "Point", "coordinates": ["119", "31.6"]}},
        ),
        (
            "NaN coordinate",
            "POST",
            "/records/organisations",
            {},
            json.dumps(
                org(ctx) | {"geometry": {"type": "Point", "coordinates": [float("nan"), lat]}}
            ).encode(),
        ),
        (
            "metres sent as degrees",
            "POST",
            "/records/organisations",
            {},
            org(ctx) | {"geometry": point(502_000.0, 3_505_000.0)},
        ),
        (
            "point outside the district",
            "POST",
            "/records/organisations",
            {},
            org(ctx) | {"geometry": point(116.40, 39.90)},
        ),
        (
            "point in another worker's grid",
            "POST",
            "/records/organisations",
            {},
            org(ctx) | {"geometry": point(119.2, 31.45)},
        ),
        (
            "wrong geometry type",
            "POST",
            "/records/organisations",
            {},
            org(ctx)
            | {"geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon, lat + 1e-4]]}},
        ),
        (
            "geometry for a resident",
            "PATCH",
            f"/records/residents/{ids['residents']}",
            match["residents"],
            {"geometry": ctx["point"]},
        ),
        (
            "projected crs member",
            "POST",
            "/records/organisations",
            {},
            org(ctx)
            | {"crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4549"}}},
        ),
        (
            "stale version",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            {"If-Match": '"v999"'},
            {"properties": {"employees": 1}},
        ),
        (
            "no If-Match",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            {},
            {"properties": {"employees": 1}},
        ),
        (
            "If-Match star",
            "DELETE",
            f"/records/organisations/{ids['organisations']}",
            {"If-Match": "*"},
            None,
        ),
        (
            "If-Match garbage",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            {"If-Match": "banana"},
            {"properties": {"employees": 1}},
        ),
        (
            "dangling building",
            "PATCH",
            f"/records/houses/{ids['houses']}",
            match["houses"],
            {"properties": {"building_id": 999_999_999}},
        ),
        (
            "dangling house",
            "PATCH",
            f"/records/residents/{ids['residents']}",
            match["residents"],
            {"properties": {"house_id": 999_999_999}},
        ),
        (
            "dangling address",
            "PATCH",
            f"/records/organisations/{ids['organisations']}",
            match["organisations"],
            {"properties": {"address_id": 999_999_999}},
        ),
        (
            "20 MB body",
            "POST",
            "/records/organisations",
            {},
            b'{"type": "Feature", "properties": {"name": "' + b"x" * (20 * 1024 * 1024) + b'"}}',
        ),
        (
            "text/plain body",
            "POST",
            "/records/organisations",
            {"Content-Type": "text/plain"},
            b"name=x",
        ),
        ("unknown record type", "POST", "/records/spaceships", {}, org(ctx)),
        (
            "no such record",
            "PATCH",
            "/records/organisations/999999999",
            {"If-Match": '"v1"'},
            {"properties": {"employees": 1}},
        ),
        ("id out of range", "GET", "/records/organisations/0", {}, None),
        (
            "area code disagrees",
            "PATCH",
            f"/records/addresses/{ids['addresses']}",
            match["addresses"],
            {"properties": {"area_code": "320117009009"}},
        ),
        (
            "building code in another grid",
            "PATCH",
            f"/records/buildings/{ids['buildings']}",
            match["buildings"],
            {"properties": {"code": "3201170010010019999"}},
        ),
        (
            "negative floors",
            "PATCH",
            f"/records/buildings/{ids['buildings']}",
            match["buildings"],
            {"properties": {"floors": -3}},
        ),
        (
            "blank name",
            "PATCH",
            f"/records/facilities/{ids['facilities']}",
            match["facilities"],
            {"properties": {"name": "   "}},
        ),
        (
            "name of 5,000 characters",
            "PATCH",
            f"/records/facilities/{ids['facilities']}",
            match["facilities"],
            {"properties": {"name": "长" * 5000}},
        ),
        (
            "emptying a required field",
            "PATCH",
            f"/records/facilities/{ids['facilities']}",
            match["facilities"],
            {"properties": {"kind": None}},
        ),
        (
            "unknown facility kind",
            "PATCH",
            f"/records/facilities/{ids['facilities']}",
            match["facilities"],
            {"properties": {"kind": "spaceport"}},
        ),
        (
            "delete a building with houses",
            "DELETE",
            f"/records/buildings/{ctx['building']}",
            {"If-Match": '"v1"'},
            None,
        ),
        (
            "sync: edits not a list",
            "POST",
            "/records/sync",
            {"Content-Type": "application/json"},
            {"edits": "all"},
        ),
        (
            "sync: repeated client id",
            "POST",
            "/records/sync",
            {"Content-Type": "application/json"},
            {"edits": [{"client_id": "a", "type": "organisations", "action": "update"}] * 2},
        ),
        (
            "sync: unknown action",
            "POST",
            "/records/sync",
            {"Content-Type": "application/json"},
            {"edits": [{"client_id": "a", "type": "organisations", "action": "merge"}]},
        ),
        (
            "purpose of 600 characters",
            "GET",
            f"/records/residents/{ids['residents']}?purpose={'x' * 600}",
            {},
            None,
        ),
    ]
    # SQL and markup metacharacters in every text field of every record type
    for rtype, spec in TYPES.items():
        for n, column in enumerate(
            c for c in spec.editable if spec.table.c[c].type.python_type is str
        ):
            payload = INJECTIONS[n % len(INJECTIONS)]
            out.append(
                (
                    f"metacharacters in {rtype}.{column}",
                    "PATCH",
                    f"/records/{rtype}/{ids[rtype]}",
                    match[rtype],
                    {"properties": {column: payload}},
                )
            )
    return out


def test_bad_input_is_refused_and_changes_nothing(client, engine, ctx):
    corpus = cases(ctx)
    assert len(corpus) >= 40
    headers = {"Authorization": f"Bearer {ctx['token']}"}
    before = snapshot(engine)
    wrong = []
    for name, method, path, extra, body in corpus:
        content = (
            body
            if isinstance(body, bytes) or body is None
            else json.dumps(body, ensure_ascii=False).encode()
        )
        h = headers | {"Content-Type": "application/geo+json"} | extra
        response = client.request(method, path, headers=h, content=content)
        ok = 400 <= response.status_code < 500 and response.headers.get("content-type") == PROBLEM
        if not ok or not response.json().get("detail"):
            wrong.append(
                f"{name}: {response.status_code} {response.headers.get('content-type')} {response.text[:200]}"
            )
    after = snapshot(engine)
    print(f"bad-input corpus: {len(corpus)} cases")
    assert wrong == []
    assert after == before
