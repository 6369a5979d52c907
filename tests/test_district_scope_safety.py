"""District-bound safety work: with 高淳区 (320118) built beside 溧水区 (320117) as in
tests/test_district_roles.py, a 320117-bound safety user's live warnings stream never carries a
320118 sensor's warning, their daily hazard summary and inspection coverage count their district
only (counted by hand), the 119 answer is refused for a point in another district and lists only
their district's things near one of theirs, and the risk layer scores their grids only.

Readings are dated in 2099-06 and removed after, with the warnings, alarms and rows made here.
"""

from __future__ import annotations

import json
import threading
from datetime import date

import httpx
import pytest
from sqlalchemy import text

from geo.records.store import counted
from tests import test_district_roles as roles
from tests.conftest import auth
from tests.test_district_roles import G1, G2, HOME, OTHER, _copy_row

#: the second district and the 320117-bound users, built as tests/test_district_roles.py does
second_district = roles.second_district
bound = roles.bound

#: the day the 320118 hazards were found and a 320118 grid inspected
DAY = date(2026, 11, 30)
FOUND = "2026-11-30T10:00:00+08:00"
AT = "2099-06-01T{:02d}:00:00+08:00"


@pytest.fixture(scope="module")
def scene(engine, second_district):
    """Two fresh 320118 sensors and one 320117 sensor without warnings; the 320118 hazards found
    on DAY with a deadline after it; a key unit in 320118; removed (with readings) after."""
    with engine.begin() as conn:
        other = [
            _copy_row(
                conn,
                "sensors",
                code=f"GZ{OTHER}00000{i}",
                grid_code=G2,
                status="online",
                geom=f"SRID=4490;POINT({118.893 + 0.001 * i} {31.326})",
            )
            for i in (2, 3)
        ]
        home = conn.execute(
            text("""SELECT id FROM sensors s WHERE district_code = :d AND status = 'online'
                    AND NOT EXISTS (SELECT 1 FROM sensor_warnings w WHERE w.sensor_id = s.id)
                    ORDER BY id DESC LIMIT 1"""),
            {"d": HOME},
        ).scalar_one()
        conn.execute(
            text("""UPDATE hazards SET found_at = CAST(:f AS timestamptz), deadline = CAST(:f AS timestamptz) + interval '60 days'
                    WHERE id = ANY(:ids)"""),
            {"f": FOUND, "ids": second_district["hazards"]},
        )
        conn.execute(
            text("UPDATE organisations SET is_key_unit = true WHERE id = :o"),
            {"o": second_district["organisations"][0]},
        )
        sensors = {
            r.id: r
            for r in conn.execute(
                text("SELECT id, code, threshold FROM sensors WHERE id = ANY(:s)"),
                {"s": [*other, home]},
            )
        }
    made = {"o1": sensors[other[0]], "o2": sensors[other[1]], "home": sensors[home]}
    made["alarms"], made["hazards"] = [], []
    yield made
    with engine.begin() as conn:
        ids = [*other, home]
        conn.execute(text("DELETE FROM sensor_warnings WHERE sensor_id = ANY(:s)"), {"s": ids})
        conn.execute(text("DELETE FROM sensor_readings WHERE sensor_id = ANY(:s)"), {"s": ids})
        conn.execute(text("DELETE FROM sensors WHERE id = ANY(:s)"), {"s": other})
        conn.execute(text("DELETE FROM fire_alarms WHERE id = ANY(:a)"), {"a": made["alarms"]})
        conn.execute(text("DELETE FROM hazards WHERE id = ANY(:h)"), {"h": made["hazards"]})
        gone = conn.execute(
            text("DELETE FROM inspections WHERE district_code = :d"), {"d": OTHER}
        ).rowcount
        counted(
            conn, "inspections", -gone
        )  # they were recorded through the API, which counted them


def _problem(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return answer.json()["detail"]


PERIOD = {"start": "2026-11-30", "end": "2026-11-30"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/safety/warnings/stream", {}),
        ("/safety/hazards/summary", {}),
        ("/safety/inspections/coverage", PERIOD),
        ("/safety/risk", {}),
    ],
)
def test_district_is_checked_and_a_bound_user_may_not_leave_theirs(
    client, tokens, bound, scene, path, params
):
    admin = auth(tokens, "admin")
    for bad in ("32011", "abcdef", "320199"):
        answer = client.get(path, params={**params, "district": bad}, headers=admin)
        detail = _problem(answer, 400)
        assert "320117 溧水区" in detail and "320118 高淳区" in detail
    answer = client.get(path, params={**params, "district": OTHER}, headers=bound["safety"])
    _problem(answer, 403)


# --- 1. the live warnings stream ---------------------------------------------------------------


def _listen(url: str, headers, codes: set[str], until: str, seen: list, ready: threading.Event):
    """Collect (event, sensor code) of the stream for ``codes`` until ``until``'s warning."""
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(60)) as stream:
        assert stream.status_code == 200
        event = None
        for line in stream.iter_lines():
            ready.set()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                code = json.loads(line[6:])["sensor_code"]
                if code in codes:
                    seen.append((event, code))
                if (event, code) == ("warning", until):
                    return


def test_a_bound_stream_never_carries_another_districts_warning(served, tokens, bound, scene):
    o1, o2, home = scene["o1"].code, scene["o2"].code, scene["home"].code
    codes = {o1, o2, home}
    stream = served + "/safety/warnings/stream"
    city = auth(tokens, "safety")
    listeners = {  # name: (url, headers, the last warning it must hear)
        "bound": (stream, bound["safety"], home),
        "narrowed": (stream + f"?district={OTHER}", city, o2),
        "city": (stream, city, o2),
    }
    seen = {name: [] for name in listeners}
    threads = []
    for name, (url, headers, until) in listeners.items():
        ready = threading.Event()
        t = threading.Thread(
            target=_listen, args=(url, headers, codes, until, seen[name], ready), daemon=True
        )
        t.start()
        assert ready.wait(30), name
        threads.append(t)
    # raised in this order, so the feed (by warning id) tells o1 before home before o2: a bound
    # stream that stops at home's warning would have heard o1's first, were it leaking
    for hour, sensor in enumerate((scene["o1"], scene["home"], scene["o2"])):
        body = f"sensor_code,observed_at,value\n{sensor.code},{AT.format(hour)},"
        body += f"{sensor.threshold + 3}\n"
        answer = httpx.post(
            served + "/safety/readings",
            content=body.encode(),
            headers={"Content-Type": "text/csv", **city},
        )
        assert answer.json()["warnings_opened"] == 1, answer.text
    for t in threads:
        t.join(45)
    assert seen["bound"] == [("warning", home)]
    assert seen["narrowed"] == [("warning", o1), ("warning", o2)]
    assert seen["city"] == [("warning", o1), ("warning", home), ("warning", o2)]
    # the list agrees: the bound user's open warnings are all 320117's, and include home's
    listed = httpx.get(served + "/safety/warnings", headers=bound["safety"]).json()["warnings"]
    assert home in {w["sensor_code"] for w in listed}
    assert {w["grid_code"][:6] for w in listed} == {HOME}


# --- 2. the daily summary and inspection coverage -----------------------------------------------


def _found_on_day(engine, district: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("""SELECT count(*) FROM hazards WHERE district_code = :d
                    AND found_at >= '2026-11-30T00:00:00+08:00'
                    AND found_at < '2026-12-01T00:00:00+08:00'"""),
            {"d": district},
        ).scalar_one()


def test_the_daily_summary_counts_the_callers_district(client, engine, tokens, bound, scene):
    day = {"day": DAY.isoformat()}
    city = auth(tokens, "safety")
    theirs = client.get(
        "/safety/hazards/summary", params={**day, "district": OTHER}, headers=city
    ).json()
    # by hand: 高淳 has one street, whose two hazards were both found on DAY, none closed or late
    assert theirs["streets"] == [
        {"code": f"{OTHER}001000", "name": "淳溪街道", "found": 2, "closed": 0, "open": 2}
        | {"overdue": 0}
    ]
    assert theirs["total"] == {"found": 2, "closed": 0, "open": 2, "overdue": 0}
    assert sum(d["found"] for d in theirs["departments"]) == 2
    mine = client.get("/safety/hazards/summary", params=day, headers=bound["safety"]).json()
    assert mine["district"] == HOME
    assert {s["code"][:6] for s in mine["streets"]} == {HOME}
    assert mine["total"]["found"] == _found_on_day(engine, HOME)
    assert sum(d["found"] for d in mine["departments"]) == _found_on_day(engine, HOME)
    narrowed = client.get(
        "/safety/hazards/summary", params={**day, "district": HOME}, headers=city
    ).json()
    assert narrowed == mine
    whole = client.get("/safety/hazards/summary", params=day, headers=city).json()
    assert whole["district"] is None
    assert whole["total"]["found"] == mine["total"]["found"] + 2
    assert whole["total"]["open"] == mine["total"]["open"] + theirs["total"]["open"]


def test_inspection_coverage_counts_the_callers_district(client, engine, tokens, bound, scene):
    city = auth(tokens, "safety")
    made = client.post(
        "/safety/inspections",
        json={
            "source": "grid_patrol",
            "inspector": "高淳巡查员",
            "inspected_at": FOUND,
            "points": [[118.885, 31.325]],  # in G1
            "result": "passed",
        },
        headers=city,
    )
    assert made.status_code == 201, made.text
    period = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    theirs = client.get(
        "/safety/inspections/coverage", params={**period, "district": OTHER}, headers=city
    ).json()
    assert theirs["grids"]["total"] == 2 and theirs["grids"]["inspected"] == 1
    assert theirs["grids"]["not_inspected"] == [G2]
    assert theirs["key_units"]["total"] == 1 and theirs["key_units"]["inspected"] == 0
    mine = client.get("/safety/inspections/coverage", params=period, headers=bound["safety"]).json()
    with engine.connect() as conn:
        grids, units = conn.execute(
            text("""SELECT (SELECT count(*) FROM grids WHERE district_code = :d),
                           (SELECT count(*) FROM organisations
                            WHERE is_key_unit AND district_code = :d)"""),
            {"d": HOME},
        ).one()
    assert mine["grids"]["total"] == grids == len(mine["grids"]["each"])
    assert mine["key_units"]["total"] == units
    assert {g["code"][:6] for g in mine["grids"]["each"]} == {HOME}
    assert G1 not in mine["grids"]["not_inspected"] and G2 not in mine["grids"]["not_inspected"]
    whole = client.get("/safety/inspections/coverage", params=period, headers=city).json()
    assert whole["grids"]["total"] == grids + 2
    assert whole["key_units"]["total"] == units + 1
    assert whole["grids"]["inspected"] == mine["grids"]["inspected"] + 1


# --- 3. the 119 answer and the risk layer ---------------------------------------------------------


def test_an_alarm_in_another_district_is_refused_to_a_bound_responder(
    client, engine, tokens, bound, scene, second_district
):
    point = {"lon": 118.889, "lat": 31.3255}  # in 高淳, among the test's rows
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM fire_alarms")).scalar_one()
    detail = _problem(client.post("/safety/alarms", json=point, headers=bound["safety"]), 403)
    assert OTHER in detail and HOME in detail
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM fire_alarms")).scalar_one() == before
    city = client.post("/safety/alarms", json=point, headers=auth(tokens, "safety"))
    assert city.status_code == 201, city.text
    scene["alarms"].append(city.json()["alarm_id"])
    assert city.json()["levels"][0]["code"] == f"{OTHER}000000"
    near = {h["id"] for h in city.json()["hazards"]["items"]}
    assert set(second_district["hazards"]) <= near
    # the whole city's alarm in 高淳 is neither listed to nor opened by the 溧水 responder
    aid = city.json()["alarm_id"]
    listed = client.get("/safety/alarms", params={"limit": 500}, headers=bound["safety"]).json()
    assert aid not in {a["id"] for a in listed["alarms"]}
    assert client.get(f"/safety/alarms/{aid}", headers=bound["safety"]).status_code == 404
    assert client.get(f"/safety/alarms/{aid}", headers=auth(tokens, "safety")).status_code == 200


def test_a_bound_responders_answer_lists_their_districts_things_only(
    client, engine, tokens, bound, scene
):
    """Near a boundary the radius reaches into the other district: simulated here by a hazard
    coded to 320118 (grid G2) but placed 20 m from an open 溧水 hazard, where the alarm is."""
    with engine.begin() as conn:
        hid, lon, lat = conn.execute(
            text("""SELECT id, ST_X(geom), ST_Y(geom) FROM hazards
                    WHERE district_code = :d AND status <> 'closed' ORDER BY id LIMIT 1"""),
            {"d": HOME},
        ).one()
        stray = _copy_row(
            conn,
            "hazards",
            code=f"YH{OTHER}00000000000900",
            grid_code=G2,
            organisation_id=None,
            status="reported",
            closed_at=None,
            description="边界外测试隐患",
            geom=f"SRID=4490;POINT({lon + 0.0002} {lat})",
        )
    scene["hazards"].append(stray)
    point = {"lon": lon, "lat": lat}
    city = client.post("/safety/alarms", json=point, headers=auth(tokens, "safety"))
    mine = client.post("/safety/alarms", json=point, headers=bound["safety"])
    assert city.status_code == mine.status_code == 201, (city.text, mine.text)
    scene["alarms"] += [city.json()["alarm_id"], mine.json()["alarm_id"]]
    city_ids = {h["id"] for h in city.json()["hazards"]["items"]}
    mine_ids = {h["id"] for h in mine.json()["hazards"]["items"]}
    assert {hid, stray} <= city_ids
    assert mine_ids == city_ids - {stray}
    assert mine.json()["hazards"]["open"] == city.json()["hazards"]["open"] - 1
    assert mine.json()["levels"][0]["code"] == f"{HOME}000000"
    listed = client.get("/safety/alarms", params={"limit": 500}, headers=bound["safety"]).json()
    assert mine.json()["alarm_id"] in {a["id"] for a in listed["alarms"]}


def test_risk_by_grid_covers_the_callers_district(client, engine, tokens, bound, scene):
    with engine.connect() as conn:
        home_grids = conn.execute(
            text("SELECT count(*) FROM grids WHERE district_code = :d"), {"d": HOME}
        ).scalar_one()
    city = auth(tokens, "safety")
    theirs = client.get("/safety/risk", params={"district": OTHER}, headers=city).json()
    assert sorted(f["id"] for f in theirs["features"]) == [G1, G2]
    mine = client.get("/safety/risk", headers=bound["safety"]).json()
    assert len(mine["features"]) == home_grids
    assert {f["id"][:6] for f in mine["features"]} == {HOME}
    assert max(f["properties"]["score"] for f in mine["features"]) > 0
    whole = client.get("/safety/risk", headers=city).json()
    assert len(whole["features"]) == home_grids + 2
    cells = client.get("/safety/risk", params={"level": "h3_9"}, headers=bound["safety"]).json()
    whole_cells = client.get("/safety/risk", params={"level": "h3_9"}, headers=city).json()
    # 高淳's rows fall in cells of their own (far from 溧水): the bound reader has fewer cells
    assert 0 < len(cells["features"]) < len(whole_cells["features"])
