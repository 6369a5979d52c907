"""Offline sync: a 1,000-edit batch with 10% conflicts gets the right per-edit report, and replaying
the batch changes nothing."""

from __future__ import annotations

import json

from sqlalchemy import text

from tests.conftest import snapshot

EDITABLE = {
    "buildings": "year_built",
    "addresses": "estate",
    "organisations": "employees",
    "facilities": "capacity",
}


def _value(rtype, n):
    return {
        "buildings": 1990 + n % 30,
        "addresses": f"同步小区{n}",
        "organisations": n % 500,
        "facilities": n % 300,
    }[rtype]


def test_a_thousand_edits_with_conflicts_then_a_replay(client, engine, people):
    with engine.connect() as conn:
        grids = (
            conn.execute(text("SELECT code FROM grids ORDER BY households DESC LIMIT 14"))
            .scalars()
            .all()
        )
    field = people.token("t_field", "grid_worker", tuple(grids))
    office = people.token("t_office", "admin")
    with engine.begin() as conn:
        targets = conn.execute(
            text(
                " UNION ALL ".join(
                    f"(SELECT '{t}' AS t, id, version FROM {t} WHERE grid_code = ANY(:g) ORDER BY id)"
                    for t in EDITABLE
                )
            ),
            {"g": list(grids)},
        ).all()
    assert len(targets) >= 1000, len(targets)
    targets = targets[:1000]
    conflicted = set(range(0, 1000, 10))  # every tenth record is changed at the office first
    for i in sorted(conflicted):
        rtype, rid, version = targets[i]
        r = client.patch(
            f"/records/{rtype}/{rid}",
            headers={
                "Authorization": f"Bearer {office}",
                "Content-Type": "application/geo+json",
                "If-Match": f'"v{version}"',
            },
            content=json.dumps({"properties": {EDITABLE[rtype]: _value(rtype, 10_000 + i)}}),
        )
        assert r.status_code == 200, r.text
    batch = {
        "edits": [
            {
                "client_id": f"tablet-7/{i}",
                "type": rtype,
                "action": "update",
                "id": rid,
                "base_version": version,
                "properties": {EDITABLE[rtype]: _value(rtype, i)},
            }
            for i, (rtype, rid, version) in enumerate(targets)
        ]
    }
    headers = {"Authorization": f"Bearer {field}", "Content-Type": "application/json"}
    report = client.post(
        "/records/sync", headers=headers, content=json.dumps(batch, ensure_ascii=False)
    ).json()
    assert report["summary"] == {"applied": 900, "conflict": 100}
    for i, result in enumerate(report["results"]):
        rtype, rid, version = targets[i]
        field_name = EDITABLE[rtype]
        assert result["client_id"] == f"tablet-7/{i}"
        if i in conflicted:
            assert result["status"] == "conflict"
            assert result["server_version"] == version + 1
            diff = result["diff"][field_name]
            assert diff["yours"] == _value(rtype, i) and diff["server"] == _value(rtype, 10_000 + i)
        else:
            assert result["status"] == "applied" and result["version"] == version + 1
    with engine.connect() as conn:
        rtype, rid, _ = targets[1]
        assert conn.execute(
            text(f"SELECT {EDITABLE[rtype]} FROM {rtype} WHERE id = :i"), {"i": rid}
        ).scalar() == _value(rtype, 1)
    before = snapshot(engine)
    replay = client.post(
        "/records/sync", headers=headers, content=json.dumps(batch, ensure_ascii=False)
    ).json()
    assert snapshot(engine) == before
    assert replay["summary"] == report["summary"]
    assert all(r["replayed"] for r in replay["results"])
    assert [r["status"] for r in replay["results"]] == [r["status"] for r in report["results"]]


def test_sync_refuses_what_the_worker_may_not_do(client, engine, people):
    with engine.connect() as conn:
        mine, theirs = (
            conn.execute(text("SELECT code FROM grids ORDER BY code LIMIT 2")).scalars().all()
        )
    token = people.token("t_field2", "grid_worker", (mine,))
    with engine.begin() as conn:
        outside = conn.execute(
            text("SELECT id, version FROM facilities WHERE grid_code = :g LIMIT 1"), {"g": theirs}
        ).one()
        resident = conn.execute(
            text("SELECT id, version FROM residents WHERE grid_code = :g LIMIT 1"), {"g": mine}
        ).one()
    batch = {
        "edits": [
            {
                "client_id": "x1",
                "type": "facilities",
                "action": "update",
                "id": outside.id,
                "base_version": outside.version,
                "properties": {"capacity": 1},
            },
            {
                "client_id": "x2",
                "type": "residents",
                "action": "update",
                "id": resident.id,
                "base_version": resident.version,
                "properties": {"relation": "其他"},
            },
            {"client_id": "x3", "type": "spaceships", "action": "create", "properties": {}},
        ]
    }
    report = client.post(
        "/records/sync",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        content=json.dumps(batch, ensure_ascii=False),
    ).json()
    statuses = [(r["status"], r.get("kind")) for r in report["results"]]
    assert statuses == [("rejected", "forbidden"), ("pending", None), ("rejected", "not_found")]
