"""What a hostile tester tried, by class, as attacks: each asserts the answer (a 4xx problem+json,
or the masked value) and that the database is exactly as before (the table snapshot)."""

from __future__ import annotations

import calendar
import itertools
import json
import re
import zipfile
from datetime import date

import geopandas
import pytest
import shapely
from sqlalchemy import text

from geo.codes import id_number_check
from tests.conftest import auth, snapshot

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/geo+json"}
_serial = itertools.count(500)


def _one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _refused(response, *statuses) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.text[:200]
    body = response.json()
    assert body["status"] == response.status_code and len(body["detail"]) > 10
    return body


# --- 1. a mask that can be undone is no mask ---------------------------------------------------


def candidates(shown_id: str, shown_birth, gender: str | None) -> int:
    """How many valid identity numbers agree with what one caller was shown of a person: the
    number's visible characters, the birth date (or just its year) and the sex. Computed
    independently of the service: dates from the calendar, the sequence's parity from the sex,
    the check character from GB 11643."""
    pattern = shown_id
    birth = str(shown_birth) if shown_birth is not None else ""
    if len(pattern) != 18:
        return 0
    years = [int(birth[:4])] if re.fullmatch(r"\d{4}.*", birth) else range(1900, 2027)
    days = []
    for year in years:
        for month in range(1, 13):
            for day in range(1, calendar.monthrange(year, month)[1] + 1):
                iso = date(year, month, day).isoformat()
                if len(birth) == 10 and iso != birth:
                    continue
                days.append(f"{year:04d}{month:02d}{day:02d}")
    count = 0
    for yyyymmdd in days:
        head = pattern[:6] + yyyymmdd
        if any(p != "*" and p != c for p, c in zip(pattern[:14], head, strict=True)):
            continue
        if pattern[14:18] == "****":  # sequence and check hidden: only the sex narrows them
            count += 500 if gender in ("M", "F") else 1000
            continue
        for seq in range(1000):
            body = head + f"{seq:03d}"
            if any(p != "*" and p != c for p, c in zip(pattern[:17], body, strict=True)):
                continue
            if gender in ("M", "F") and (seq % 2 == 1) != (gender == "M"):
                continue
            if pattern[17] in ("*", id_number_check(body)):
                count += 1
    return count


@pytest.mark.parametrize("who", ["investment", "planner", "safety", "worker_a", "admin"])
def test_no_role_can_rebuild_a_masked_identity_number(client, engine, tokens, who):
    """From every role's view, on both paths, a masked number leaves 1,000+ candidates."""
    views = [client.get("/collections/residents/items?limit=200", headers=auth(tokens, who))]
    if who in ("planner", "safety", "worker_a", "admin"):
        views.append(client.get("/records/residents?limit=200", headers=auth(tokens, who)))
    seen = 0
    for response in views:
        if response.status_code in (401, 403, 404):
            continue
        for feature in response.json()["features"]:
            p = feature["properties"]
            if "*" not in p["id_number"]:
                continue  # raw only with a purpose: not the case here
            seen += 1
            assert p["birth_date"] is None or len(str(p["birth_date"])) == 4, p
            assert candidates(p["id_number"], p["birth_date"], p.get("gender")) >= 1000, p
    assert seen > 0


def test_the_old_mask_would_have_been_undone():
    """The check above can fail: under 'first 6 + last 4' beside a full birth date, one number."""
    first17 = "32011719900131123"
    full = first17 + id_number_check(first17)
    old = full[:6] + "********" + full[-4:]
    assert candidates(old, "1990-01-31", "M") == 1


# --- 2. filters and sorting are no oracle ------------------------------------------------------


def test_a_grid_worker_cannot_find_people_elsewhere_by_filter_or_sort(
    client, engine, tokens, grids
):
    purpose = "核查 checking"
    elsewhere = _one(
        engine, "SELECT id_number FROM residents WHERE grid_code = :g LIMIT 1", g=grids["B"]
    )
    mine = _one(engine, "SELECT count(*) FROM residents WHERE grid_code = :g", g=grids["A"])
    worker = auth(tokens, "worker_a")
    found = client.get(
        "/collections/residents/items",
        params={"filter": f"id_number = '{elsewhere}'", "purpose": purpose},
        headers=worker,
    ).json()
    assert found["numberMatched"] == 0
    everyone = client.get(
        "/collections/residents/items",
        params={"filter": "id_number LIKE '3%'", "purpose": purpose, "limit": 5000},
        headers=worker,
    ).json()
    assert everyone["numberMatched"] <= mine
    assert all(f["properties"]["grid_code"] == grids["A"] for f in everyone["features"])
    # organisations are open to read, raw only in their own grid: a filter matches only there
    phone = _one(
        engine,
        "SELECT contact_phone FROM organisations WHERE grid_code = :g AND contact_phone IS NOT NULL "
        "LIMIT 1",
        g=grids["B"],
    )
    orgs = client.get(
        "/collections/organisations/items",
        params={"filter": f"contact_phone = '{phone}'", "purpose": purpose},
        headers=worker,
    ).json()
    assert orgs["numberMatched"] == 0
    sorted_ = client.get(
        "/collections/organisations/items",
        params={"sortby": "contact_phone", "purpose": purpose, "limit": 5000},
        headers=worker,
    ).json()
    assert {f["properties"]["grid_code"] for f in sorted_["features"]} <= {grids["A"]}
    # without a purpose, or for a role that may never see them raw: no filtering at all
    for who, params in (("worker_a", {}), ("planner", {})):
        _refused(
            client.get(
                "/collections/organisations/items",
                params={"filter": f"contact_phone = '{phone}'", **params},
                headers=auth(tokens, who),
            ),
            400,
        )


def test_collections_and_records_show_a_grid_worker_the_same_residents(client, tokens, grids):
    worker = auth(tokens, "worker_a")
    features = client.get("/collections/residents/items?limit=5000", headers=worker).json()
    records = client.get("/records/residents?limit=5000", headers=worker).json()
    assert {f["id"] for f in features["features"]} == {f["id"] for f in records["features"]}
    assert features["numberMatched"] == records["numberMatched"] > 0


# --- 3. other leaks -----------------------------------------------------------------------------


def test_a_sync_conflict_never_serves_the_identity_hash(client, engine, tokens, grids):
    rid = _one(engine, "SELECT id FROM residents WHERE grid_code = :g LIMIT 1", g=grids["A"])
    version = _one(engine, "SELECT version FROM residents WHERE id = :i", i=rid)
    batch = {
        "edits": [
            {
                "client_id": f"leak-{next(_serial)}",
                "type": "residents",
                "action": "update",
                "id": rid,
                "base_version": version - 1 if version > 1 else version + 5,
                "properties": {"phone": "13800000000"},
            }
        ]
    }
    answer = client.post(
        "/records/sync", headers=auth(tokens, "admin") | JSON, content=json.dumps(batch)
    ).json()["results"][0]
    assert answer["status"] == "conflict"
    assert "id_hash" not in answer["diff"] and "id_hash" not in answer["server"]
    assert "*" in answer["server"]["id_number"]


def test_review_payloads_are_masked_unless_a_purpose_is_stated(client, engine, tokens, grids):
    house = _one(engine, "SELECT id FROM houses WHERE grid_code = :g LIMIT 1", g=grids["A"])
    first17 = f"32011719880203{next(_serial) % 1000:03d}"
    number = first17 + id_number_check(first17)
    feature = {
        "type": "Feature",
        "properties": {
            "name": "审核测试",
            "id_number": number,
            "gender": "M",
            "birth_date": "1988-02-03",
            "residence_type": "registered",
            "house_id": house,
        },
    }
    held = client.post(
        "/records/residents", headers=auth(tokens, "worker_a") | JSON, content=json.dumps(feature)
    )
    assert held.status_code == 202
    review = held.json()["review_id"]
    listed = client.get("/records/reviews", headers=auth(tokens, "admin")).json()["reviews"]
    payload = next(r for r in listed if r["id"] == review)["payload"]["properties"]
    assert payload["id_number"] != number and payload["name"] != "审核测试"
    audited = _one(engine, "SELECT count(*) FROM audit_log WHERE target_type = 'record_reviews'")
    raw = client.get(
        "/records/reviews", params={"purpose": "审核 reviewing"}, headers=auth(tokens, "admin")
    ).json()["reviews"]
    assert next(r for r in raw if r["id"] == review)["payload"]["properties"]["id_number"] == number
    assert (
        _one(engine, "SELECT count(*) FROM audit_log WHERE target_type = 'record_reviews'")
        == audited + 1
    )


def test_registering_a_known_identity_number_says_neither_whether_nor_where(
    client, engine, tokens, grids
):
    """Elsewhere-registered and brand-new numbers get the same answer: held for review."""
    house = _one(engine, "SELECT id FROM houses WHERE grid_code = :g LIMIT 1", g=grids["A"])
    taken = _one(
        engine, "SELECT id_number FROM residents WHERE grid_code = :g LIMIT 1", g=grids["B"]
    )
    first17 = f"32011719770506{next(_serial) % 1000:03d}"
    fresh = first17 + id_number_check(first17)
    answers = []
    for number in (taken, fresh):
        feature = {
            "type": "Feature",
            "properties": {
                "name": "重复测试",
                "id_number": number,
                "gender": "F",
                "birth_date": "1977-05-06",
                "residence_type": "floating",
                "house_id": house,
            },
        }
        r = client.post(
            "/records/residents",
            headers=auth(tokens, "worker_a") | JSON,
            content=json.dumps(feature),
        )
        answers.append((r.status_code, sorted(r.json())))
    assert answers[0] == answers[1] and answers[0][0] == 202


# --- 5, 6. uploads -------------------------------------------------------------------------------


def _upload(client, tokens, path, layer="emergency_shelters", dept="区应急管理局"):
    with path.open("rb") as handle:
        return client.post(
            f"/layers/{layer}/ingest",
            headers=auth(tokens, "admin"),
            data={"dept": dept},
            files={"file": (path.name, handle)},
        )


def test_a_vrt_disguised_as_geojson_reads_no_file_of_the_server(client, engine, tokens, tmp_path):
    vrt = tmp_path / "shelters.geojson"
    vrt.write_text(
        '<OGRVRTDataSource><OGRVRTLayer name="passwd"><SrcDataSource>CSV:/etc/passwd'
        "</SrcDataSource><GeometryType>wkbNone</GeometryType></OGRVRTLayer></OGRVRTDataSource>"
    )
    for name in ("shelters.geojson", "shelters.gpkg", "shelters.csv", "shelters"):
        disguised = tmp_path / name
        disguised.write_bytes(vrt.read_bytes())
        before = snapshot(engine, ("layer_catalogue",))
        body = _refused(_upload(client, tokens, disguised), 400)
        assert "root:" not in json.dumps(body) and "OGRVRT" not in body["detail"]
        assert "/etc/passwd" not in body["detail"]
        assert snapshot(engine, ("layer_catalogue",)) == before


def test_a_zip_may_not_unpack_without_bound(client, engine, tokens, tmp_path):
    bomb = tmp_path / "bomb.zip"
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("big.shp", "w", force_zip64=True) as member,
    ):
        for _ in range(600):  # 600 MiB unpacked, about 600 KiB packed
            member.write(block)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(100):
            archive.writestr(f"part{i}.txt", "x")
    before = snapshot(engine, ("layer_catalogue",))
    assert "unpacks to more than" in _refused(_upload(client, tokens, bomb), 400)["detail"]
    assert "more than 64 files" in _refused(_upload(client, tokens, many), 400)["detail"]
    assert snapshot(engine, ("layer_catalogue",)) == before


def test_a_lying_zip_header_is_caught_while_unpacking(tmp_path):
    from geo.errors import IngestError
    from layers.readers import ReadLimits, read

    small = tmp_path / "small.zip"
    with zipfile.ZipFile(small, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.shp", b"\0" * 200_000)
    with pytest.raises(IngestError, match="unpacks to more than"):
        read(small, limits=ReadLimits(unzipped_bytes=100_000))


def test_a_geopackage_with_a_recursive_view_is_refused(client, engine, tokens, tmp_path):
    import sqlite3

    gpkg = tmp_path / "shelters.gpkg"
    frame = geopandas.GeoDataFrame(
        {"名称": ["避难所"], "编号": ["S1"]}, geometry=[shapely.Point(119.02, 31.65)], crs=4326
    )
    frame.to_file(gpkg, layer="shelters", driver="GPKG")
    with sqlite3.connect(gpkg) as db:
        db.execute(
            "CREATE VIEW endless AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
            "SELECT n AS fid FROM r"
        )
    before = snapshot(engine, ("layer_catalogue",))
    assert "view" in _refused(_upload(client, tokens, gpkg), 400)["detail"]
    assert snapshot(engine, ("layer_catalogue",)) == before


def test_a_shapefile_whose_attributes_are_short_is_reported(client, engine, tokens, tmp_path):
    folder = tmp_path / "shp"
    folder.mkdir()
    frame = geopandas.GeoDataFrame(
        {"名称": [f"避难所{i}" for i in range(5)], "编号": [f"S{i}" for i in range(5)]},
        geometry=[shapely.Point(119.0 + i * 0.001, 31.65) for i in range(5)],
        crs=4326,
    )
    frame.to_file(folder / "shelters.shp", encoding="utf-8")
    dbf = folder / "shelters.dbf"
    raw = bytearray(dbf.read_bytes())
    raw[4:8] = (3).to_bytes(4, "little")  # the .dbf now says 3 rows; the .shp has 5 shapes
    dbf.write_bytes(bytes(raw))
    packed = tmp_path / "shelters.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        for part in folder.iterdir():
            archive.write(part, part.name)
    before = snapshot(engine, ("layer_catalogue",))
    detail = _refused(_upload(client, tokens, packed), 400)["detail"]
    assert "5 shapes" in detail and "3 attribute rows" in detail
    assert snapshot(engine, ("layer_catalogue",)) == before


# --- 7, 8. authorisation -----------------------------------------------------------------------


def test_a_worker_may_not_point_a_record_at_another_grid(client, engine, tokens, grids):
    facility = _one(engine, "SELECT id FROM facilities WHERE grid_code = :g LIMIT 1", g=grids["A"])
    address_b = _one(engine, "SELECT id FROM addresses WHERE grid_code = :g LIMIT 1", g=grids["B"])
    etag = client.get(f"/records/facilities/{facility}", headers=auth(tokens, "admin")).headers[
        "etag"
    ]
    before = snapshot(engine)
    patch = {"type": "Feature", "properties": {"address_id": address_b}}
    body = _refused(
        client.patch(
            f"/records/facilities/{facility}",
            headers=auth(tokens, "worker_a") | JSON | {"If-Match": etag},
            content=json.dumps(patch),
        ),
        403,
    )
    assert "your grids" in body["detail"]
    building_b = _one(engine, "SELECT id FROM buildings WHERE grid_code = :g LIMIT 1", g=grids["B"])
    house = {
        "type": "Feature",
        "properties": {
            "building_id": building_b,
            "room_number": "8801",
            "floor": 8,
            "use": "dwelling",
            "tenure": "owned",
        },
    }
    _refused(
        client.post(
            "/records/houses", headers=auth(tokens, "worker_a") | JSON, content=json.dumps(house)
        ),
        403,
    )
    assert snapshot(engine) == before


def test_a_permitted_delete_never_changes_another_grids_record(client, engine, tokens, grids):
    address_a = _one(
        engine,
        "SELECT a.id FROM addresses a WHERE a.grid_code = :g AND NOT EXISTS "
        "(SELECT 1 FROM facilities f WHERE f.address_id = a.id) AND NOT EXISTS "
        "(SELECT 1 FROM houses h WHERE h.address_id = a.id) AND NOT EXISTS "
        "(SELECT 1 FROM organisations o WHERE o.address_id = a.id) ORDER BY a.id LIMIT 1",
        g=grids["A"],
    )
    facility_b = _one(
        engine, "SELECT id FROM facilities WHERE grid_code = :g LIMIT 1", g=grids["B"]
    )
    with engine.begin() as conn:  # an administrator once linked a grid-B facility to it
        conn.execute(
            text("UPDATE facilities SET address_id = :a WHERE id = :f"),
            {"a": address_a, "f": facility_b},
        )
    etag = client.get(f"/records/addresses/{address_a}", headers=auth(tokens, "admin")).headers[
        "etag"
    ]
    before = snapshot(engine)
    body = _refused(
        client.delete(
            f"/records/addresses/{address_a}",
            headers=auth(tokens, "worker_a") | {"If-Match": etag},
        ),
        409,
    )
    assert "1 facilities" in body["detail"]
    assert snapshot(engine) == before


def test_restoring_another_grids_record_is_forbidden_not_missing(client, engine, tokens, grids):
    rid = _one(engine, "SELECT id FROM facilities WHERE grid_code = :g LIMIT 1", g=grids["B"])
    before = snapshot(engine)
    for version in (1, 999):
        _refused(
            client.post(
                f"/records/facilities/{rid}/history/{version}/restore",
                headers=auth(tokens, "worker_a") | {"If-Match": '"v1"'},
            ),
            403,
        )
    assert snapshot(engine) == before


# --- 9, 10. no request may produce a 500, nor change anything when refused ---------------------

FILTERS = [
    "floors = 'x'",
    "name LIKE 1",
    "year_built > TIMESTAMP('2020-01-01T00:00:00Z')",
    "floors / 0 > 1",
    "height_m * 1e308 * 1e308 > 1",
    "floors * 9223372036854775807 > 1",
    "S_INTERSECTS(floors, POINT(119 31.6))",
    "RELATE(geom, POINT(119 31.6), 'abcdefghi')",
    " AND ".join(f"floors <> {i}" for i in range(500)),
    " OR ".join(f"floors = {i}" for i in range(500)),
    "floors > 1e999",
    "name LIKE '%\u202e%'",
]
CQL2_JSON = ["5", "NaN", "1e999999", "[1]", '"text"', "null", "[" * 1000 + "]" * 1000]


@pytest.mark.parametrize("who", ["anonymous", "worker_a"])
def test_hostile_queries_are_refused_not_crashed(client, engine, tokens, who):
    before = snapshot(engine)
    headers = auth(tokens, who)
    for expression in FILTERS:
        r = client.get(
            "/collections/buildings/items",
            params={
                "filter": expression.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            },
            headers=headers,
        )
        _refused(r, 400)
    for body in CQL2_JSON:
        r = client.get(
            "/collections/buildings/items",
            params={"filter": body, "filter-lang": "cql2-json"},
            headers=headers,
        )
        _refused(r, 400)
    raw = '{"op": "=", "args": [{"property": "name"}, "\\ud800"]}'
    _refused(
        client.get(
            "/collections/buildings/items",
            params={"filter": raw, "filter-lang": "cql2-json"},
            headers=headers,
        ),
        400,
    )
    for params in (
        {"offset": str(2**63)},
        {"offset": "-1"},
        {"limit": str(2**64)},
        {"filter-crs": "EPSG:999999"},
        {"bbox-crs": "EPSG:34490", "bbox": "1,2,3,4"},
        {"crs": "http://www.opengis.net/def/crs/EPSG/0/34490"},
        {"datetime": "2020-13-45"},
    ):
        _refused(client.get("/collections/hazards/items", params=params, headers=headers), 400)
    assert snapshot(engine) == before


def test_hostile_bodies_are_refused_and_change_nothing(client, engine, tokens, grids):
    lon, lat = 119.03, 31.65
    worker = auth(tokens, "worker_a") | JSON
    nested = "[" * 1000 + "]" * 1000
    bodies = [
        nested,
        '{"type": "Feature", "properties": {"name": "\\ud800", "kind": "toilet"}}',
        '{"type": "Feature", "properties": {"kind": "toilet", "name": 1e999999}}',
        json.dumps(
            {
                "type": "Feature",
                "properties": {"kind": "toilet", "name": "公厕"},
                "geometry": {"type": "Point", "coordinates": [[lon, lat]]},
            }
        ),
        json.dumps(
            {
                "type": "Feature",
                "properties": {"kind": "toilet", "name": "公厕"},
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "crs": {"type": "name", "properties": {"name": "EPSG:34490"}},
            }
        ),
    ]
    for bad_name in ("\u202eexe.txt", "名\x85称", "名\uffff", "tag\U000e0041", "zero\u200bwidth"):
        bodies.append(
            json.dumps(
                {
                    "type": "Feature",
                    "properties": {"kind": "toilet", "name": bad_name},
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                },
                ensure_ascii=True,
            )
        )
    before = snapshot(engine)
    for body in bodies:
        _refused(client.post("/records/facilities", headers=worker, content=body), 400, 422)
    many = [[lon + 0.00001 * (i % 100), lat + 0.00001 * (i // 100)] for i in range(12_000)]
    polygon = {
        "type": "Feature",
        "properties": {"floors": 1, "height_m": 3, "use": "residential"},
        "geometry": {"type": "Polygon", "coordinates": [[*many, many[0]]]},
    }
    _refused(client.post("/records/buildings", headers=worker, content=json.dumps(polygon)), 413)
    assert snapshot(engine) == before


def test_a_sync_edit_that_cannot_be_answered_leaves_no_receipt(client, engine, tokens):
    batch = {
        "edits": [
            {
                "client_id": f"huge-{next(_serial)}",
                "type": "facilities",
                "action": "update",
                "id": 2**64,
                "base_version": 1,
                "properties": {"name": "x"},
            }
        ]
    }
    before = snapshot(engine)
    for _ in range(2):  # the replay is refused the same way: nothing was kept
        _refused(
            client.post(
                "/records/sync", headers=auth(tokens, "admin") | JSON, content=json.dumps(batch)
            ),
            400,
            422,
        )
    batch["edits"][0]["id"] = 2**62 + 1
    _refused(
        client.post(
            "/records/sync", headers=auth(tokens, "admin") | JSON, content=json.dumps(batch)
        ),
        400,
        422,
    )
    assert snapshot(engine) == before


# --- 11, 12. availability and smaller things ---------------------------------------------------


def test_a_query_past_its_time_budget_is_a_503_not_a_stall(db_url, engine):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import LimitSettings
    from tests.conftest import settings_for

    hasty = settings_for(db_url, limits=LimitSettings(read_timeout_ms=1))
    with TestClient(create_app(hasty)) as client:
        r = client.get(
            "/collections/addresses/items",
            params={"limit": 10_000, "filter": "full_name LIKE '%溧水%'", "sortby": "-full_name"},
        )
    assert "took longer" in _refused(r, 503)["detail"]


def test_links_never_follow_a_forged_host(client, db_url):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import ServiceSettings
    from tests.conftest import settings_for

    _refused(client.get("/collections", headers={"Host": "evil.example"}), 400)
    public = settings_for(
        db_url, service=ServiceSettings(public_url="https://onemap.lishui.example/")
    )
    with TestClient(create_app(public), base_url="http://127.0.0.1") as other:
        links = other.get("/collections").json()["links"]
    assert all(link["href"].startswith("https://onemap.lishui.example/") for link in links)
