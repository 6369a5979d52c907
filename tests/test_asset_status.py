"""The idle-asset register's lifecycle: allowed moves only, each kept with who and when, a stale
version refused, the public and grid workers kept out; a refused move changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import text


@pytest.fixture(scope="module")
def scratch():
    """A district of its own (the small demo city): history is append-only, so moves made here
    could not be undone in the shared test database."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.bootstrap import prepare_demo
    from geo.database import create_database, drop_database
    from geo.database import engine as make_engine
    from tests.conftest import People, settings_for, url_for

    url = url_for("onemap_test_assets")
    create_database(url, replace=True)
    prepare_demo(url, scale="small")
    eng = make_engine(url)
    with TestClient(create_app(settings_for(url))) as client:
        yield client, People(eng), eng
    eng.dispose()
    drop_database(url)


@pytest.fixture(scope="module")
def client(scratch):
    return scratch[0]


@pytest.fixture(scope="module")
def people(scratch):
    return scratch[1]


@pytest.fixture
def asset(scratch):
    """A fresh asset that is ``entered`` (one not yet moved by an earlier test)."""
    with scratch[2].connect() as conn:
        return conn.execute(
            text("""SELECT min(a.id) FROM assets a WHERE a.status = 'entered' AND NOT EXISTS
                    (SELECT 1 FROM asset_status_history h WHERE h.asset_id = a.id
                     AND h.changed_by LIKE 'asset_%')""")
        ).scalar_one()


def test_an_asset_moves_through_its_lifecycle_and_every_move_is_kept(client, people, asset):
    staff = people.headers("asset_staff", "investment")
    before = client.get(f"/assets/{asset}/history", headers=staff).json()
    assert before["status"] == "entered" and before["next"] == ["promoted", "withdrawn"]
    for to in ("promoted", "negotiating", "revitalised"):
        answer = client.post(
            f"/assets/{asset}/status", json={"status": to, "note": f"去{to}"}, headers=staff
        )
        assert answer.status_code == 200, answer.text
    after = client.get(f"/assets/{asset}/history", headers=staff).json()
    assert after["status"] == "revitalised" and after["next"] == []
    added = after["history"][len(before["history"]) :]
    assert [s["status"] for s in added] == ["promoted", "negotiating", "revitalised"]
    assert all(s["changed_by"] == "asset_staff" and s["changed_at"] for s in added)
    assert after["version"] == before["version"] + 3


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"status": "revitalised"}, 409, "cannot move to revitalised"),
        ({"status": "sold"}, 409, "unknown status"),
        ({"status": "promoted", "version": 1_000_000}, 412, "version"),
        ({"status": "promoted", "colour": "red"}, 422, "colour"),
    ],
)
def test_a_refused_move_changes_nothing(client, people, asset, body, status, words):
    staff = people.headers("asset_staff", "investment")
    before = client.get(f"/assets/{asset}/history", headers=staff).json()
    answer = client.post(f"/assets/{asset}/status", json=body, headers=staff)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.text
    assert client.get(f"/assets/{asset}/history", headers=staff).json() == before


def test_only_investment_staff_move_assets(client, people, asset):
    body = {"status": "promoted"}
    assert client.post(f"/assets/{asset}/status", json=body).status_code == 401
    planner = people.headers("asset_planner", "planner")
    assert client.post(f"/assets/{asset}/status", json=body, headers=planner).status_code == 403
    assert client.get(f"/assets/{asset}/history", headers=planner).status_code == 200
    assert client.get(f"/assets/{asset}/history").status_code == 401
    staff = people.headers("asset_staff", "investment")
    assert client.get("/assets/99999999/history", headers=staff).status_code == 404


#: the lifecycle as the register's rules give it, written out by hand: from → the moves allowed
ALLOWED = {
    "entered": {"promoted", "withdrawn"},
    "promoted": {"negotiating", "withdrawn", "entered"},
    "negotiating": {"revitalised", "promoted", "withdrawn"},
    "revitalised": set(),
    "withdrawn": {"entered"},
}


@pytest.mark.parametrize("start", sorted(ALLOWED))
def test_every_transition_is_allowed_or_refused_as_the_lifecycle_says(
    client, people, scratch, start
):
    """All 25 (from, to) pairs: an allowed move changes the status and adds one history row; a
    refused one answers 409 and changes nothing."""
    staff = people.headers("asset_staff", "investment")
    eng = scratch[2]
    with eng.connect() as conn:
        asset = conn.execute(
            text("SELECT max(id) FROM assets WHERE status = 'entered'")
        ).scalar_one()
    for to in ("entered", "promoted", "negotiating", "revitalised", "withdrawn"):
        with eng.begin() as conn:  # put the asset where the move starts from
            conn.execute(
                text("UPDATE assets SET status = :s WHERE id = :id"), {"s": start, "id": asset}
            )
        before = client.get(f"/assets/{asset}/history", headers=staff).json()
        answer = client.post(f"/assets/{asset}/status", json={"status": to}, headers=staff)
        after = client.get(f"/assets/{asset}/history", headers=staff).json()
        if to in ALLOWED[start]:
            assert answer.status_code == 200, (start, to, answer.text)
            assert after["status"] == to
            assert [s["status"] for s in after["history"][len(before["history"]) :]] == [to]
        else:
            assert answer.status_code == 409, (start, to, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert after == before, (start, to)
