"""What QGIS 3.22's OAPIF provider needs of the items (issue 17): the id as a property it can
show and filter on, every RFC 3339 datetime it sends (year 0000 for an open start), and numbers
that are JSON numbers, so that a first page of nulls does not turn a column into text."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import text

from tests.conftest import auth

TIMED = {"hazards": "found_at", "inspections": "inspected_at"}


@pytest.fixture(scope="module")
def admin(tokens) -> dict[str, str]:
    return auth(tokens, "admin")


@pytest.fixture(scope="module")
def layer_ids(client, admin) -> list[str]:
    return [c["id"] for c in client.get("/collections", headers=admin).json()["collections"]]


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_the_id_is_a_property_equal_to_the_top_level_id(client, tokens, layer_ids, who):
    headers = auth(tokens, who)
    for layer in layer_ids:
        page = client.get(f"/collections/{layer}/items", params={"limit": 5}, headers=headers)
        if page.status_code == 404:  # a layer this caller may not list
            continue
        features = page.json()["features"]
        assert features, layer
        for feature in features:
            assert feature["properties"]["id"] == feature["id"], layer
        one = client.get(f"/collections/{layer}/items/{features[0]['id']}", headers=headers)
        assert one.status_code == 200, layer
        assert one.json()["properties"]["id"] == one.json()["id"] == features[0]["id"]


def test_the_id_is_queryable_filterable_and_sortable(client, admin, layer_ids):
    for layer in layer_ids:
        queryables = client.get(f"/collections/{layer}/queryables", headers=admin).json()
        assert (
            queryables["properties"]["id"] | {"type": "integer", "x-ogc-role": "id"}
            == (queryables["properties"]["id"])
        ), layer
        sortables = client.get(f"/collections/{layer}/sortables", headers=admin).json()
        assert "id" in sortables["properties"], layer
    ids = [f["id"] for f in client.get("/collections/buildings/items?limit=5").json()["features"]]
    wanted = ids[3]
    for params in ({"id": str(wanted)}, {"filter": f"id = {wanted}"}):
        body = client.get("/collections/buildings/items", params=params).json()
        assert body["numberMatched"] == 1
        assert [f["properties"]["id"] for f in body["features"]] == [wanted]
    both = client.get(f"/collections/buildings/items?id={ids[0]}&id={ids[1]}").json()
    assert sorted(f["id"] for f in both["features"]) == sorted(ids[:2])
    down = client.get("/collections/buildings/items", params={"sortby": "-id", "limit": 5}).json()
    got = [f["properties"]["id"] for f in down["features"]]
    assert got == sorted(got, reverse=True) and got[0] > max(ids)
    assert client.get("/collections/buildings/items?id=x").status_code == 400


def test_downloads_keep_one_id_column(client):
    answer = client.get("/collections/buildings/items?limit=3&f=csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0].count("编号 id") == 1 and not any(h.endswith(" id") for h in rows[0][1:])
    just = client.get("/collections/buildings/items", params={"properties": "id", "limit": 2})
    assert [set(f["properties"]) for f in just.json()["features"]] == [{"id"}, {"id"}]


@pytest.mark.parametrize("layer", sorted(TIMED))
def test_every_rfc3339_datetime_form(client, engine, admin, layer):
    field = TIMED[layer]
    table = f"{layer}"
    total = _count(engine, f"SELECT count(*) FROM {table}")
    pivot = _count(
        engine,
        f"SELECT to_char({field} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
        f"FROM {table} ORDER BY {field} OFFSET (SELECT count(*) / 2 FROM {table}) LIMIT 1",
    )
    day = pivot[:10]
    before = _count(engine, f"SELECT count(*) FROM {table} WHERE {field} <= :t", t=pivot)
    after = _count(engine, f"SELECT count(*) FROM {table} WHERE {field} >= :t", t=pivot)
    at = _count(engine, f"SELECT count(*) FROM {table} WHERE {field} = :t", t=pivot)
    on_day = _count(
        engine,
        f"SELECT count(*) FROM {table} WHERE ({field} AT TIME ZONE 'UTC')::date = CAST(:d AS date)",
        d=day,
    )
    from_day = _count(
        engine,
        f"SELECT count(*) FROM {table} WHERE {field} >= CAST(:d || 'T00:00:00Z' AS timestamptz)",
        d=day,
    )
    assert 0 < before < total and 0 < after < total and at >= 1 and on_day >= at
    cases = {
        f"0000-01-01T00:00:00Z/{pivot}": before,  # QGIS's open start
        f"../{pivot}": before,
        f"/{pivot}": before,
        f"{pivot}/..": after,
        f"{pivot}/": after,
        "/..": total,
        "../..": total,
        "0000-01-01T00:00:00Z/9999-12-31T23:59:59Z": total,
        "0000-01-01T00:00:00Z/..": total,
        "../9999-12-31T23:59:59Z": total,
        "9999-12-31T23:59:59Z/..": 0,
        "../0000-12-31T23:59:59Z": 0,
        "0000-01-01T00:00:00Z": 0,
        "9999-12-31T23:59:59Z": 0,
        "9999-12-31T23:00:00-05:00/..": 0,  # after 9999 in UTC: past Python's last instant
        pivot: at,
        pivot.replace("Z", "+00:00"): at,
        day: on_day,
        f"{day}/..": from_day,
        f"{day}/{day}": on_day,
    }
    for value, expected in cases.items():
        answer = client.get(
            f"/collections/{layer}/items", params={"datetime": value, "limit": 1}, headers=admin
        )
        assert answer.status_code == 200, (value, answer.text)
        assert answer.json()["numberMatched"] == expected, value


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2020-13-45",
        "2026-02-30",
        "2026-01-01T25:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "0000-00-01",
        "2026-02-01/2026-01-01",
        "2026-01-01T00:00:00Z/2026-01-01T00:00:00Z/..",
        "٢٠٢٦-01-01",
        "+2026-01-01",
    ],
)
def test_bad_datetimes_are_400(client, value):
    answer = client.get("/collections/hazards/items", params={"datetime": value})
    assert answer.status_code == 400, value
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_the_collection_and_queryables_name_the_datetime_property(client, admin, layer_ids):
    for layer in layer_ids:
        body = client.get(f"/collections/{layer}", headers=admin).json()
        queryables = client.get(f"/collections/{layer}/queryables", headers=admin).json()
        roles = {
            name: p["x-ogc-role"]
            for name, p in queryables["properties"].items()
            if p.get("x-ogc-role") == "primary-instant"
        }
        if layer in TIMED:
            assert body["x-onemap-datetime-property"] == TIMED[layer]
            assert roles == {TIMED[layer]: "primary-instant"}
            assert queryables["properties"][TIMED[layer]]["format"] == "date-time"
        elif "x-onemap-datetime-property" not in body:
            assert roles == {}


def _numeric(schema: dict) -> list[str]:
    def kind(p):
        return p.get("type") if isinstance(p.get("type"), str) else (p.get("type") or [None])[0]

    return [n for n, p in schema["properties"].items() if kind(p) in ("integer", "number")]


def test_numbers_are_json_numbers_even_after_a_first_page_of_nulls(client, engine, admin):
    nulls = _count(
        engine,
        "SELECT count(*) FROM (SELECT area_m2 FROM facilities ORDER BY id LIMIT 10) f "
        "WHERE area_m2 IS NULL",
    )
    assert nulls == 10  # the case QGIS met: the first ten say nothing of the type
    features = client.get("/collections/facilities/items?limit=1000").json()["features"]
    areas = [f["properties"]["area_m2"] for f in features]
    assert any(a is not None for a in areas)
    assert all(a is None or isinstance(a, (int, float)) for a in areas)


def test_every_numeric_column_is_served_as_numbers(client, admin, layer_ids):
    for layer in layer_ids:
        schema = client.get(f"/collections/{layer}/schema", headers=admin).json()
        numeric = _numeric(schema)
        features = client.get(
            f"/collections/{layer}/items", params={"limit": 200}, headers=admin
        ).json()["features"]
        for feature in features:
            for name in numeric:
                value = feature["properties"].get(name)
                assert value is None or (
                    isinstance(value, (int, float)) and not isinstance(value, bool)
                ), (layer, name, value)


@pytest.mark.parametrize("who", ["anonymous", "worker_a", "admin"])
def test_the_schema_states_every_property_type(client, tokens, layer_ids, who):
    headers = auth(tokens, who)
    for layer in layer_ids:
        schema = client.get(f"/collections/{layer}/schema", headers=headers)
        if schema.status_code == 404:
            continue
        props = schema.json()["properties"]
        features = client.get(
            f"/collections/{layer}/items", params={"limit": 50}, headers=headers
        ).json()["features"]
        served = set().union(*(f["properties"] for f in features)) if features else set()
        assert served <= set(props), (layer, served - set(props))
        for name, p in props.items():
            if p.get("x-ogc-role") == "primary-geometry":
                continue
            kinds = [p["type"]] if isinstance(p["type"], str) else p["type"]
            assert kinds[0] in ("integer", "number", "string", "boolean", "array", "object")
            if kinds[0] == "string" and p.get("format") == "date-time":
                values = [f["properties"].get(name) for f in features]
                assert all(v is None or "T" in v for v in values), (layer, name)
            for f in features:
                value = f["properties"].get(name)
                if value is None:
                    continue
                python = {"integer": int, "number": (int, float), "string": str, "boolean": bool}
                if kinds[0] in python:
                    assert isinstance(value, python[kinds[0]]), (layer, name, value)
