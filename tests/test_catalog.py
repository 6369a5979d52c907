"""The layer catalogue ("one table", 一张表) at /catalog: every entry described, closed ones hidden
from anonymous callers, personal and internal fields marked, departmental layers included."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from layers.ingest import drop_layer, ingest

SHELTERS = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "department_files"
    / "emergency_shelters_gcj02.csv"
)
KEYS = {
    "id",
    "title_zh",
    "title_en",
    "department",
    "description",
    "geometry_type",
    "source_crs",
    "update_frequency",
    "last_loaded",
    "feature_count",
    "extent",
    "fields",
    "personal_fields",
    "sharing_level",
    "sharing_level_zh",
    "opening_level",
    "opening_level_zh",
}
SHARING_ZH = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
OPENING_ZH = {"open": "无条件开放", "restricted": "受限开放", "closed": "禁止开放"}


@pytest.fixture(scope="module")
def admin(people):
    return people.headers("catalog_admin", "admin")


@pytest.fixture(scope="module")
def shelters(engine):
    with engine.begin() as conn:
        ingest(conn, SHELTERS, "emergency_shelters", "区应急管理局", "gcj02")
    yield
    with engine.begin() as conn:
        drop_layer(conn, "emergency_shelters")


def _rows(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {
            r["id"]: dict(r) for r in conn.execute(text("SELECT * FROM layer_catalogue")).mappings()
        }


def test_every_layer_is_described_and_closed_ones_are_hidden_from_anonymous(
    client, engine, admin, shelters
):
    rows = _rows(engine)
    anonymous = {e["id"]: e for e in client.get("/catalog").json()["layers"]}
    signed_in = {e["id"]: e for e in client.get("/catalog", headers=admin).json()["layers"]}
    assert set(signed_in) == set(rows)
    assert set(anonymous) == {i for i, r in rows.items() if r["opening_level"] != "closed"}
    assert "residents" in signed_in and "residents" not in anonymous
    for layer_id, entry in signed_in.items():
        row = rows[layer_id]
        assert set(entry) >= KEYS, layer_id
        assert entry["feature_count"] == row["feature_count"]
        assert entry["source_crs"] == row["source_crs"]
        assert entry["sharing_level_zh"] == SHARING_ZH[row["sharing_level"]]
        assert entry["opening_level_zh"] == OPENING_ZH[row["opening_level"]]
        assert set(entry["personal_fields"]) == set(row["access"].get("personal", {}))
        assert all({"name", "type"} <= set(f) for f in entry["fields"])


def test_a_departmental_layer_shows_its_origin_fields_and_personal_data(client, engine, shelters):
    entry = next(
        e for e in client.get("/catalog").json()["layers"] if e["id"] == "emergency_shelters"
    )
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM layers.emergency_shelters")).scalar()
    assert entry["feature_count"] == count == 40
    assert (entry["source_crs"], entry["geometry_type"]) == ("GCJ-02", "POINT")
    assert entry["department"].startswith("区应急管理局")
    assert entry["personal_fields"] == {"contact_name": "name", "contact_phone": "phone"}
    fields = {f["name"]: f for f in entry["fields"]}
    assert fields["contact_phone"]["personal"] == "phone"
    assert fields["contact_phone"]["title_zh"] == "联系电话"
    assert fields["capacity"]["type"] == "integer" and fields["geom"]["geometry_type"] == "POINT"
    assert (entry["sharing_level_zh"], entry["opening_level_zh"]) == ("无条件共享", "无条件开放")
    minx, miny, maxx, maxy = entry["extent"]
    assert 118.8 < minx < maxx < 119.3 and 31.3 < miny < maxy < 31.8
    assert entry["last_loaded"] is not None and entry["departmental"] is True


def test_internal_fields_are_listed_only_to_roles_that_may_see_them(client, admin):
    public = next(e for e in client.get("/catalog").json()["layers"] if e["id"] == "assets")
    inside = next(
        e for e in client.get("/catalog", headers=admin).json()["layers"] if e["id"] == "assets"
    )
    public_names = {f["name"] for f in public["fields"]}
    inside_names = {f["name"] for f in inside["fields"]}
    assert "reserve_price_wan" not in public_names and "reserve_price_wan" in inside_names


def test_the_catalogue_page_is_chinese_first_and_lists_each_visible_layer(client, engine):
    page = client.get("/catalog", params={"f": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "资源目录" in page.text
    rows = _rows(engine)
    for r in rows.values():
        if r["opening_level"] == "closed":
            assert f'id="{r["id"]}"' not in page.text
        else:
            assert r["title_zh"] in page.text and f'id="{r["id"]}"' in page.text
