"""One read plan for every path: the masks agree in Python and SQL, the records and features paths
decide alike for every role, and counts never reveal rows the caller cannot read."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo.errors import BadRequest, Forbidden
from geo.policy.access import ALL, OWN, LayerAccess
from geo.policy.masks import MASKS
from geo.policy.plan import plan_read
from geo.policy.roles import ROLES, Viewer
from geo.records import TYPES
from layers.catalogue import get_layer, list_layers
from tests.conftest import auth

CORPUS = [
    None,
    "",
    "李",
    "李四",
    "欧阳娜娜",
    "Zhang San",
    "O'Brien-Smith",
    "𠀋𠀌𠀍",  # outside the BMP: one character each, in both languages
    "13812345678",
    "+8613812345678",
    "1381234",
    "12345678",
    "320117199001011234",
    "32011719900101123X",
    "3201171990010",
    "12345678901",
    "abcdefghijk",
    " ",
    "\u3000全角空格",
    "😀😀😀😀😀😀😀😀😀😀😀",
]


DATES = [None, "1990-01-31", "2000-02-29", "1949-10-01", "0001-01-01", "9999-12-31"]


@pytest.mark.parametrize("kind", sorted(MASKS))
def test_python_and_sql_masks_agree(engine, kind):
    """Features mask inside PostgreSQL, records in Python: the same text, value for value."""
    sql_type, corpus = ("date", DATES) if kind == "birth_date" else ("text", CORPUS)
    with engine.connect() as conn:
        for value in corpus:
            in_sql = conn.execute(
                text(f"SELECT onemap_mask_{kind}(CAST(:v AS {sql_type}))"), {"v": value}
            ).scalar()
            assert in_sql == MASKS[kind](value), (kind, value)


def _viewers(grids) -> list[Viewer]:
    out = []
    for role in ROLES:
        bound = frozenset({grids["A"]}) if role == "grid_worker" else frozenset()
        out.append(Viewer(username=f"p_{role}", role=role, grids=bound))
    return out


@pytest.mark.parametrize("rtype", sorted(TYPES))
@pytest.mark.parametrize("purpose", [None, "核查住户信息 checking a household"])
def test_records_and_features_plan_alike_for_every_role(engine, grids, rtype, purpose):
    """The records path builds its plan from the model's declaration, the features path from the
    catalogue: for every role and purpose they must decide the same, down to the audience key."""
    with engine.connect() as conn:
        layer = get_layer(conn, rtype, Viewer(role="admin"))
    for who in _viewers(grids):
        outcomes = []
        for planner in (layer.plan, TYPES[rtype].plan):
            try:
                plan = planner(who, purpose)
                outcomes.append(
                    (
                        plan.columns,
                        dict(plan.personal),
                        plan.raw,
                        plan.raw_grids,
                        plan.rows,
                        plan.audience,
                    )
                )
            except (Forbidden, BadRequest) as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], (rtype, who.role, purpose)


def test_safety_officers_unmask_organisations_on_both_paths(client, engine, tokens):
    """The rule that used to differ between /collections and /records: now one rule."""
    with engine.connect() as conn:
        rid = conn.execute(
            text("SELECT id FROM organisations WHERE contact_phone IS NOT NULL ORDER BY id LIMIT 1")
        ).scalar()
        phone = conn.execute(
            text("SELECT contact_phone FROM organisations WHERE id = :i"), {"i": rid}
        ).scalar()
    purpose = {"purpose": "消防检查联系 calling a key unit"}
    for role, raw in (("safety", True), ("planner", False), ("admin", True)):
        features = client.get(
            f"/collections/organisations/items/{rid}", params=purpose, headers=auth(tokens, role)
        )
        records = client.get(
            f"/records/organisations/{rid}", params=purpose, headers=auth(tokens, role)
        )
        if raw:
            assert features.status_code == records.status_code == 200, role
            assert features.json()["properties"]["contact_phone"] == phone
            assert records.json()["properties"]["contact_phone"] == phone
        else:
            assert features.status_code == records.status_code == 403, role
    plain = client.get(f"/records/organisations/{rid}", headers=auth(tokens, "safety")).json()
    assert plain["properties"]["contact_phone"] != phone  # no purpose, no raw value
    assert "*" in plain["properties"]["contact_phone"]


def test_a_grid_worker_sees_raw_values_only_in_their_own_grid():
    access = LayerAccess(personal={"name": "name"}, unmask={"grid_worker": OWN})
    worker = Viewer("w", "grid_worker", frozenset({"G1"}))
    plan = plan_read("people", access, ["id", "name", "grid_code"], worker, "走访 visiting")
    assert plan.properties({"name": "王小明", "grid_code": "G1"})["name"] == "王小明"
    assert plan.properties({"name": "王小明", "grid_code": "G2"})["name"] == "王**"
    assert plan.properties({"name": "王小明", "grid_code": None})["name"] == "王**"
    with pytest.raises(Forbidden):
        plan_read("people", access, ["id", "name"], Viewer("p", "planner"), "好奇 curious")
    with pytest.raises(BadRequest):
        plan_read("people", access, ["id", "name"], worker, "   ")


def test_the_audience_key_is_equal_exactly_when_the_view_is():
    access = LayerAccess(
        personal={"phone": "phone"},
        unmask={"investment": ALL},
        internal=frozenset({"price"}),
        internal_roles=frozenset({"investment"}),
        rows={"investment": ALL, "planner": ALL},
        other_rows="status = 'open'",
    )
    fields = ["id", "name", "phone", "price", "status", "geom"]

    def key(role, purpose=None):
        return plan_read("assets", access, fields, Viewer(role=role), purpose).audience

    assert key("public") == key("safety")  # same columns, masks and rows
    assert key("public") != key("planner")  # the planner sees every row
    assert key("planner") != key("investment")  # the investor sees the internal price
    assert key("investment") != key("investment", "招商洽谈 negotiating")  # raw phone
    assert key("admin") == key("investment")  # both: every row and column, masked, no purpose
    assert key("admin", "审计 audit") != key("investment")


def test_never_served_and_internal_fields_are_dropped_from_records():
    access = LayerAccess(internal=frozenset({"notes"}))
    props = {"id": 1, "id_hash": "abc", "notes": "内部", "name": "甲"}
    public = plan_read("x", access, list(props), Viewer()).properties(props)
    admin = plan_read("x", access, list(props), Viewer(role="admin")).properties(props)
    assert public == {"id": 1, "name": "甲"}
    assert admin == {"id": 1, "notes": "内部", "name": "甲"}


@pytest.mark.parametrize("role", ["anonymous", "investment", "planner", "safety", "worker_a"])
def test_counts_equal_the_rows_the_caller_can_read(client, engine, tokens, role):
    """Every count a caller is shown (collections, one collection, the catalogue) equals the
    number of features that caller can page through: no count reveals hidden rows."""
    headers = auth(tokens, role)
    listed = {c["id"]: c for c in client.get("/collections", headers=headers).json()["collections"]}
    catalogue = {e["id"]: e for e in client.get("/catalog", headers=headers).json()["layers"]}
    with engine.connect() as conn:
        layers = [layer.id for layer in list_layers(conn, Viewer(role="admin"))]
    assert "assets" in listed
    for layer_id in layers:
        if layer_id not in listed:
            continue
        readable = client.get(
            f"/collections/{layer_id}/items", params={"limit": 1}, headers=headers
        ).json()["numberMatched"]
        one = client.get(f"/collections/{layer_id}", headers=headers).json()
        assert listed[layer_id]["x-feature-count"] == readable, (role, layer_id)
        assert one["x-feature-count"] == readable, (role, layer_id)
        assert catalogue[layer_id]["feature_count"] == readable, (role, layer_id)
    if role == "anonymous":
        with engine.connect() as conn:
            everything = conn.execute(text("SELECT count(*) FROM assets")).scalar()
        assert listed["assets"]["x-feature-count"] < everything
