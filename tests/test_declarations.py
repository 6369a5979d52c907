"""Departmental layers declared as data: TOML files shipped with the service, and declarations a
district makes at run time (the command line, POST /layers), refused with the line and the field
when they cannot work."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import text

from tests.conftest import snapshot

WELLS = """# 区水务局's wells, as a CSV with lon/lat
id = "test_wells"
title_zh = "测试水井"
title_en = "Test wells"
department = "区水务局 (water bureau)"
description = "水井。Wells."
sharing_level = "unconditional"
opening_level = "open"

[ingest]
key = "code"
match = ["grid"]
department_aliases = ["水务局"]

[[fields]]
name = "code"
sources = ["编号"]
title_zh = "编号"
required = true

[[fields]]
name = "depth_m"
sources = ["井深(米)", "井深"]
type = "number"
title_zh = "井深(米)"

[[fields]]
name = "keeper_phone"
sources = ["管护人电话"]
title_zh = "管护人电话"
personal = "phone"
"""


@pytest.fixture
def cleanup(engine):
    yield
    from layers.ingest import drop_layer

    with engine.begin() as conn:
        for layer_id in ("test_wells", "test_wells_api"):
            drop_layer(conn, layer_id)
        conn.execute(text("DELETE FROM ingest.declarations WHERE id LIKE 'test_wells%'"))


def test_the_shipped_layers_are_toml_files():
    from layers import departments

    ids = {layer.id for layer in departments.declared()}
    assert {"emergency_shelters", "landuse_nrb"} <= ids
    shelters = departments.get("emergency_shelters")
    assert shelters.personal == {"contact_name": "name", "contact_phone": "phone"}
    assert shelters.ingest.match == ("grid", "building", "address")


def test_a_layer_declared_on_the_command_line_is_listed_and_takes_files(
    client, engine, db_url, tmp_path, people, cleanup, monkeypatch
):
    path = tmp_path / "wells.toml"
    path.write_text(WELLS, encoding="utf-8")
    env = {"DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "layers", "declare", str(path)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    assert listed["test_wells"]["x-feature-count"] == 0
    catalogue = {e["id"]: e for e in client.get("/catalog").json()["layers"]}
    fields = {f["name"]: f for f in catalogue["test_wells"]["fields"]}
    assert (
        fields["depth_m"]["title_zh"] == "井深(米)"
        and fields["keeper_phone"]["personal"] == "phone"
    )
    csv = tmp_path / "wells.csv"
    csv.write_text(
        "编号,井深(米),管护人电话,经度,纬度\nW1,35.5,13812345678,119.03,31.65\n", encoding="utf-8"
    )
    admin = people.headers("declare_admin", "admin")
    with csv.open("rb") as handle:
        loaded = client.post(
            "/layers/test_wells/ingest",
            headers=admin,
            data={"dept": "水务局"},
            files={"file": ("wells.csv", handle)},
        )
    assert loaded.status_code == 201, loaded.text
    feature = client.get("/collections/test_wells/items").json()["features"][0]
    assert feature["properties"]["depth_m"] == 35.5
    assert feature["properties"]["keeper_phone"] == "138****5678"


BAD = {
    "a typo in a field's key": (
        WELLS.replace('type = "number"', 'typ = "number"'),
        "line 24",
        "typ",
        "depth_m",
    ),
    "a wrong type": (
        WELLS.replace("required = true", 'required = "yes"'),
        "line 19",
        "required",
        "code",
    ),
    "a reserved field name": (
        WELLS.replace('name = "depth_m"', 'name = "geom"'),
        "line 22",
        "geom",
        "reserved",
    ),
    "a mask that does not exist": (
        WELLS.replace('personal = "phone"', 'personal = "secret"'),
        "line 31",
        "keeper_phone",
        "mask kind",
    ),
    "not TOML at all": (
        WELLS.replace('title_en = "Test wells"', "title_en = Test wells"),
        "line 4",
        "TOML",
        "title",
    ),
    "an unknown match rule": (
        WELLS.replace('match = ["grid"]', 'match = ["parcel"]'),
        "test_wells",
        "parcel",
        "match",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_declaration_names_the_line_and_the_field_and_changes_nothing(
    client, engine, people, case, cleanup
):
    source, *words = BAD[case]
    admin = people.headers("declare_admin", "admin")
    before = snapshot(engine, ("layer_catalogue", "audit_log"))
    r = client.post(
        "/layers",
        headers=admin | {"Content-Type": "application/toml"},
        content=source.replace("test_wells", "test_wells_api").encode(),
    )
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    for word in words:
        assert word.replace("test_wells", "test_wells_api") in detail, (case, detail)
    assert snapshot(engine, ("layer_catalogue", "audit_log")) == before


def test_declaring_over_the_api_needs_an_administrator(client, people, tokens, cleanup):
    body = WELLS.replace("test_wells", "test_wells_api").encode()
    planner = {"Authorization": f"Bearer {tokens['planner']}"}
    assert client.post("/layers", headers=planner, content=body).status_code == 403
    assert client.post("/layers", content=body).status_code == 401
    admin = people.headers("declare_admin", "admin")
    made = client.post("/layers", headers=admin, content=body)
    assert made.status_code == 201 and made.headers["location"].endswith(
        "/collections/test_wells_api"
    )
    base = {"Authorization": admin["Authorization"], "Content-Type": "application/toml"}
    clash = WELLS.replace('id = "test_wells"', 'id = "buildings"').encode()
    assert client.post("/layers", headers=base, content=clash).status_code == 400
