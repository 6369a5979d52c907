"""Grid workers keep the 四标四实 records: roles and tokens, the authorisation matrix, optimistic
concurrency, history and restore, review, bad input that changes nothing, and the audit log."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from geo.codes import credit_code_check, id_number_check
from geo.policy.users import create_user, issue_token, revoke
from geo.records import TYPES
from tests.conftest import auth, snapshot

JSON = {"Content-Type": "application/geo+json"}
PERSONAL_TYPES = ("residents", "organisations")
REVIEWED = ("residents", "houses")
_serial = itertools.count(1)


# --- the cast -----------------------------------------------------------------------------------


def _one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def record_in(engine, rtype, grid):
    return _one(
        engine, f"SELECT id FROM {rtype} WHERE grid_code = :g ORDER BY id DESC LIMIT 1", g=grid
    )


def inside_point(engine, grid):
    lon, lat = json.loads(
        _one(
            engine,
            "SELECT ST_AsGeoJSON(ST_PointOnSurface(geom)) FROM grids WHERE code = :g",
            g=grid,
        )
    )["coordinates"]
    return lon, lat


def shape_at(geometry_type: str, lon: float, lat: float, d: float = 0.00003) -> dict:
    """A point, or a small square (counter-clockwise) centred on it, as GeoJSON."""
    if geometry_type == "Point":
        return {"type": "Point", "coordinates": [lon, lat]}
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def new_feature(engine, rtype, grid):
    """A valid new record of the type inside the grid."""
    n = next(_serial)
    lon, lat = inside_point(engine, grid)
    point, square = shape_at("Point", lon, lat), shape_at("Polygon", lon, lat)
    building = _one(
        engine, "SELECT id FROM buildings WHERE grid_code = :g ORDER BY id LIMIT 1", g=grid
    )
    house = _one(engine, "SELECT id FROM houses WHERE grid_code = :g ORDER BY id LIMIT 1", g=grid)
    first17 = f"320117199001{n:02d}"[:14] + f"{n % 1000:03d}"
    credit17 = f"91320117MA{n:07d}"
    props, geometry = {
        "addresses": ({"full_name": f"南京市溧水区测试路{n}号", "level": "door"}, point),
        "buildings": ({"floors": 3, "height_m": 9.5, "use": "residential"}, square),
        "houses": (
            {
                "building_id": building,
                "room_number": f"9{n:03d}",
                "floor": 1,
                "use": "dwelling",
                "tenure": "rented",
            },
            None,
        ),
        "residents": (
            {
                "name": "测试人",
                "id_number": first17 + id_number_check(first17),
                "gender": "F",
                "birth_date": "1990-01-01",
                "residence_type": "floating",
                "house_id": house,
            },
            None,
        ),
        "organisations": (
            {
                "name": f"测试单位{n}",
                "credit_code": credit17 + credit_code_check(credit17),
                "kind": "shop",
            },
            point,
        ),
        "facilities": ({"kind": "toilet", "name": f"测试公厕{n}"}, point),
    }[rtype]
    return {"type": "Feature", "properties": props, "geometry": geometry}


def etag(client, tokens, rtype, rid):
    return client.get(f"/records/{rtype}/{rid}", headers=auth(tokens, "admin")).headers["etag"]


def harmless_change(rtype):
    return {
        "addresses": {"estate": "测试小区"},
        "buildings": {"year_built": 2001},
        "houses": {"area_m2": 88.0},
        "residents": {"relation": "其他"},
        "organisations": {"employees": 7},
        "facilities": {"capacity": 9},
    }[rtype]


# --- tokens -------------------------------------------------------------------------------------


def test_tokens_are_stored_only_as_hashes_and_can_be_revoked_and_expire(client, engine, tokens):
    token = tokens["planner"]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
    assert token not in stored and all(len(h) == 64 for h in stored)
    assert (
        client.get("/records/buildings?limit=1", headers=auth(tokens, "planner")).status_code == 200
    )
    with engine.begin() as conn:
        create_user(conn, "t_short", "planner")
        expired = issue_token(conn, "t_short", expires_in=timedelta(seconds=-1)).token
        revoked = issue_token(conn, "t_short").token
        assert revoke(conn, token=revoked) == 1
    for bad in (expired, revoked, "om_not-a-token"):
        response = client.get(
            "/records/buildings?limit=1", headers={"Authorization": f"Bearer {bad}"}
        )
        assert (
            response.status_code == 401
            and response.headers["content-type"] == "application/problem+json"
        )


# --- the authorisation matrix -------------------------------------------------------------------

ROLES = ("anonymous", "investment", "planner", "safety", "worker_a", "admin")
READERS = {"planner", "safety", "worker_a", "admin"}
WRITERS = {"worker_a", "admin"}
#: who may read personal fields raw, per type: residents only their grid worker (and admins);
#: organisations also safety officers, who call key units (the same rule as /collections)
UNMASKERS = {
    "residents": {"worker_a", "admin"},
    "organisations": {"worker_a", "safety", "admin"},
}


def expected(role, action, place, rtype):
    """The policy written out by hand, independently of geo.policy."""
    if role == "anonymous":
        return 401
    reading = action in ("list", "read", "history", "read_personal")
    allowed = READERS if reading else WRITERS
    if action == "read_personal" and rtype in PERSONAL_TYPES:
        allowed = UNMASKERS[rtype]
    if role not in allowed:
        return 403
    if role == "worker_a" and place == "B" and action != "list":
        return 403
    if action in ("list", "read", "history", "read_personal"):
        return 200
    if role == "worker_a" and rtype in REVIEWED:
        return 202
    return {"create": 201, "update": 200, "delete": 204, "move": 200}[action]


def attempt(client, engine, tokens, grids, role, action, place, rtype):
    headers = auth(tokens, role)
    grid = grids[place]
    if action == "list":
        return client.get(f"/records/{rtype}?limit=5", headers=headers).status_code
    if action == "create":
        return client.post(
            f"/records/{rtype}",
            headers=headers | JSON,
            content=json.dumps(new_feature(engine, rtype, grid)),
        ).status_code
    if (
        action == "delete"
    ):  # a fresh record made by the administrator, so every attempt has a target
        made = client.post(
            f"/records/{rtype}",
            headers=auth(tokens, "admin") | JSON,
            content=json.dumps(new_feature(engine, rtype, grid)),
        )
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        return client.delete(
            f"/records/{rtype}/{rid}", headers=headers | {"If-Match": made.headers["etag"]}
        ).status_code
    rid = record_in(engine, rtype, grid)
    if action == "read":
        return client.get(f"/records/{rtype}/{rid}", headers=headers).status_code
    if action == "read_personal":
        return client.get(
            f"/records/{rtype}/{rid}", params={"purpose": "入户核查"}, headers=headers
        ).status_code
    if action == "history":
        client.patch(
            f"/records/{rtype}/{rid}",
            headers=auth(tokens, "admin") | JSON | {"If-Match": etag(client, tokens, rtype, rid)},
            content=json.dumps({"properties": harmless_change(rtype)}),
        )
        return client.get(f"/records/{rtype}/{rid}/history", headers=headers).status_code
    if action == "update":
        return client.patch(
            f"/records/{rtype}/{rid}",
            headers=headers | JSON | {"If-Match": etag(client, tokens, rtype, rid)},
            content=json.dumps({"properties": harmless_change(rtype)}),
        ).status_code
    raise AssertionError(action)


MATRIX = [
    (role, action, place, rtype)
    for rtype in TYPES
    for role in ROLES
    for action in ("list", "read", "read_personal", "history", "create", "update", "delete")
    for place in (("A",) if action == "list" else ("A", "B"))
]


def test_authorisation_matrix(client, engine, tokens, grids):
    failures = []
    for role, action, place, rtype in MATRIX:
        got = attempt(client, engine, tokens, grids, role, action, place, rtype)
        want = expected(role, action, place, rtype)
        if got != want:
            failures.append(f"{role} {action} {rtype} in {place}: got {got}, want {want}")
    print(f"authorisation matrix: {len(MATRIX)} attempts")
    assert failures == []
    assert len(MATRIX) >= 400


@pytest.mark.parametrize("rtype", ["addresses", "buildings", "organisations", "facilities"])
def test_worker_a_cannot_move_a_record_out_of_their_grid(client, engine, tokens, grids, rtype):
    rid = record_in(engine, rtype, grids["A"])
    geometry = shape_at(TYPES[rtype].geometry, *inside_point(engine, grids["B"]))
    before = snapshot(engine, (rtype,))
    response = client.patch(
        f"/records/{rtype}/{rid}",
        headers=auth(tokens, "worker_a") | JSON | {"If-Match": etag(client, tokens, rtype, rid)},
        content=json.dumps({"geometry": geometry}),
    )
    assert response.status_code == 403 and "outside your grids" in response.json()["detail"]
    assert snapshot(engine, (rtype,)) == before


def test_worker_a_cannot_move_a_resident_into_worker_bs_grid(client, engine, tokens, grids):
    rid = record_in(engine, "residents", grids["A"])
    house_b = _one(engine, "SELECT id FROM houses WHERE grid_code = :g LIMIT 1", g=grids["B"])
    response = client.patch(
        f"/records/residents/{rid}",
        headers=auth(tokens, "worker_a")
        | JSON
        | {"If-Match": etag(client, tokens, "residents", rid)},
        content=json.dumps({"properties": {"house_id": house_b}}),
    )
    assert response.status_code == 403


def test_worker_a_never_sees_worker_bs_people_unmasked(client, engine, tokens, grids):
    with engine.connect() as conn:
        phones_b = set(
            conn.execute(
                text("SELECT phone FROM residents WHERE grid_code = :g AND phone IS NOT NULL"),
                {"g": grids["B"]},
            ).scalars()
        )
    w = auth(tokens, "worker_a")
    for path in (
        "/records/residents?limit=10000&purpose=核查",
        "/collections/residents/items?limit=10000&purpose=核查",
    ):
        body = client.get(path, headers=w).text
        assert not any(p in body for p in phones_b), path
    listed = client.get("/records/residents?limit=10000", headers=w).json()
    assert {f["properties"]["grid_code"] for f in listed["features"]} == {grids["A"]}


# --- reading personal data: purpose and audit ---------------------------------------------------


def test_unmasked_reads_need_a_purpose_and_are_audited(client, engine, tokens, grids):
    rid = record_in(engine, "residents", grids["A"])
    raw = _one(engine, "SELECT id_number FROM residents WHERE id = :i", i=rid)
    masked = client.get(f"/records/residents/{rid}", headers=auth(tokens, "worker_a")).json()[
        "properties"
    ]
    assert masked["id_number"] == raw[:6] + "*" * 12 and "id_hash" not in masked
    before = _one(engine, "SELECT count(*) FROM audit_log WHERE action = 'read_personal'")
    shown = client.get(
        f"/records/residents/{rid}",
        params={"purpose": "人口核查"},
        headers=auth(tokens, "worker_a"),
    )
    assert shown.json()["properties"]["id_number"] == raw
    with engine.connect() as conn:
        entry = conn.execute(
            text(
                "SELECT actor, target_type, target_id, purpose FROM audit_log "
                "WHERE action = 'read_personal' ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert tuple(entry) == ("t_worker_a", "residents", str(rid), "人口核查")
    assert (
        _one(engine, "SELECT count(*) FROM audit_log WHERE action = 'read_personal'") == before + 1
    )
    # the OGC read path: the worker's own grid only (as on /records), raw there, and audited
    fc = client.get(
        "/collections/residents/items",
        params={"limit": 5000, "purpose": "人口核查"},
        headers=auth(tokens, "worker_a"),
    ).json()
    mine = [f for f in fc["features"] if f["properties"]["grid_code"] == grids["A"]]
    assert mine and len(mine) == len(fc["features"]) == fc["numberMatched"]
    assert fc["numberMatched"] == _one(
        engine, "SELECT count(*) FROM residents WHERE grid_code = :g", g=grids["A"]
    )
    assert all("*" not in f["properties"]["id_number"] for f in mine)
    assert (
        client.get(
            "/collections/residents/items", params={"purpose": "x"}, headers=auth(tokens, "planner")
        ).status_code
        == 403
    )


def test_audit_is_for_admins_and_append_only(client, engine, tokens):
    assert client.get("/audit", headers=auth(tokens, "worker_a")).status_code == 403
    assert client.get("/audit").status_code == 401
    body = client.get(
        "/audit", params={"action": "read_personal", "limit": 5}, headers=auth(tokens, "admin")
    ).json()
    assert body["numberMatched"] >= 1 and all(
        e["action"] == "read_personal" for e in body["entries"]
    )
    assert client.get("/audit?f=html", headers=auth(tokens, "admin")).status_code == 200


# --- history, restore, review -------------------------------------------------------------------


def test_history_keeps_every_version_and_a_past_one_can_be_restored(client, engine, tokens, grids):
    a = auth(tokens, "admin")
    rid = record_in(engine, "facilities", grids["A"])
    original = client.get(f"/records/facilities/{rid}", headers=a)
    name = original.json()["properties"]["name"]
    v = original.headers["etag"]
    for new_name in ("改名一", "改名二"):
        r = client.patch(
            f"/records/facilities/{rid}",
            headers=a | JSON | {"If-Match": v},
            content=json.dumps({"properties": {"name": new_name}}),
        )
        assert r.status_code == 200, r.text
        v = r.headers["etag"]
    versions = client.get(f"/records/facilities/{rid}/history", headers=a).json()["versions"]
    assert [x["properties"]["name"] for x in versions[:2]] == ["改名二", "改名一"]
    assert versions[0]["changed"] == ["name"] and versions[0]["actor"] == "t_admin"
    first = versions[1]["version"]
    r = client.post(
        f"/records/facilities/{rid}/history/{first}/restore", headers=a | {"If-Match": v}
    )
    assert r.status_code == 200 and r.json()["properties"]["name"] == "改名一"
    r = client.post(
        f"/records/facilities/{rid}/history/{first - 1}/restore",
        headers=a | {"If-Match": r.headers["etag"]},
    )
    assert r.status_code in (200, 404)  # the loaded version has no history row of its own
    assert name  # the demo record had a name to begin with


def test_a_workers_change_to_a_resident_waits_for_review(client, engine, tokens, grids):
    w, a = auth(tokens, "worker_a"), auth(tokens, "admin")
    rid = record_in(engine, "residents", grids["A"])
    before = _one(engine, "SELECT phone FROM residents WHERE id = :i", i=rid)
    pending = client.patch(
        f"/records/residents/{rid}",
        headers=w | JSON | {"If-Match": etag(client, tokens, "residents", rid)},
        content=json.dumps({"properties": {"phone": "13912345678"}}),
    )
    assert pending.status_code == 202
    assert _one(engine, "SELECT phone FROM residents WHERE id = :i", i=rid) == before
    review = pending.json()["review_id"]
    assert client.post(f"/records/reviews/{review}/approve", headers=w).status_code == 403
    mine = client.get("/records/reviews", headers=w).json()["reviews"]
    assert review in [r["id"] for r in mine]
    approved = client.post(f"/records/reviews/{review}/approve", headers=a)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert _one(engine, "SELECT phone FROM residents WHERE id = :i", i=rid) == "13912345678"
    history = client.get(f"/records/residents/{rid}/history", headers=a).json()["versions"][0]
    assert history["actor"] == "t_worker_a" and history["review_id"] == review
    assert client.post(f"/records/reviews/{review}/approve", headers=a).status_code == 409


def test_a_review_of_a_record_that_moved_on_is_refused(client, engine, tokens, grids):
    w, a = auth(tokens, "worker_a"), auth(tokens, "admin")
    rid = record_in(engine, "houses", grids["A"])
    tag = etag(client, tokens, "houses", rid)
    review = client.patch(
        f"/records/houses/{rid}",
        headers=w | JSON | {"If-Match": tag},
        content=json.dumps({"properties": {"tenure": "vacant"}}),
    ).json()["review_id"]
    client.patch(
        f"/records/houses/{rid}",
        headers=a | JSON | {"If-Match": tag},
        content=json.dumps({"properties": {"tenure": "public"}}),
    )
    refused = client.post(f"/records/reviews/{review}/approve", headers=a)
    assert refused.status_code == 412
    assert _one(engine, "SELECT tenure FROM houses WHERE id = :i", i=rid) == "public"
    assert _one(engine, "SELECT status FROM record_reviews WHERE id = :i", i=review) == "rejected"


def test_codes_are_allocated_in_the_area_and_checked(client, engine, tokens, grids):
    a = auth(tokens, "admin")
    made = client.post(
        "/records/addresses",
        headers=a | JSON,
        content=json.dumps(new_feature(engine, "addresses", grids["A"])),
    )
    assert made.status_code == 201
    props = made.json()["properties"]
    assert props["area_code"] == grids["A"][:12] and props["code"].startswith(grids["A"][:12])
    b = client.post(
        "/records/buildings",
        headers=a | JSON,
        content=json.dumps(new_feature(engine, "buildings", grids["A"])),
    )
    assert b.status_code == 201 and b.json()["properties"]["code"].startswith(grids["A"])
