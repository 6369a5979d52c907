"""Generated requests never get a 5xx: schemathesis against the OpenAPI of the records routes (as a
grid worker and as an administrator, on a database of its own, since generated edits may apply),
and Hypothesis against the read path's query parameters (as anonymous and as a grid worker)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_DB, url_for

EXAMPLES = 30  # per operation: bounded, so make test stays quick
READ_EXAMPLES = 150  # per collection and caller


@pytest.fixture(scope="module")
def fuzz_app():
    from sqlalchemy import text

    from api.app import create_app
    from api.bootstrap import prepare_demo
    from geo.database import create_database, drop_database, engine
    from tests.conftest import People, settings_for

    url = url_for(f"{TEST_DB}_fuzz")
    create_database(url, replace=True)
    prepare_demo(url, scale="small")
    with engine(url).connect() as conn:
        grid = conn.execute(
            text("SELECT code FROM grids ORDER BY households DESC LIMIT 1")
        ).scalar()
    people = People(engine(url))  # the shared cast, in this test's own database
    tokens = [
        people.token("fuzz_worker", "grid_worker", (grid,)),
        people.token("fuzz_admin", "admin"),
    ]
    app = create_app(settings_for(url))
    app.state.fuzz_tokens = tokens
    yield app
    drop_database(url)


def test_records_api_never_fails_with_a_server_error(fuzz_app):
    """Every operation of /records, with generated inputs, as each of two users: never a 5xx.

    Driven through Hypothesis directly (schemathesis's pytest plugin does not run on pytest 9)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).include(
        path_regex=r"^/records"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    server_errors = []
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            nonlocal calls
            for token in fuzz_app.state.fuzz_tokens:
                case.headers = {**dict(case.headers or {}), "Authorization": f"Bearer {token}"}
                response = case.call()
                calls += 1
                if response.status_code >= 500:
                    server_errors.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:300]}"
                    )

        run()
    print(f"schemathesis: {len(operations)} operations, {calls} requests")
    assert server_errors == []


# --- the read path: hostile query parameters, generated ----------------------------------------

FIELDS = [
    "name",
    "floors",
    "height_m",
    "geom",
    "use",
    "code",
    "id",
    "found_at",
    "level",
    "id_number",
    "phone",
    "birth_date",
    "grid_code",
    "contact_phone",
    "status",
    "nope",
]
LITERALS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12).map(lambda t: "'" + t.replace("'", "''") + "'"),
    st.sampled_from(
        [
            "TIMESTAMP('2020-01-01T00:00:00Z')",
            "DATE('2020-02-30')",
            "true",
            "NULL",
            "POINT(119 31.6)",
            "POLYGON((0 0, 1 0, 1 1, 0 0))",
            "ENVELOPE(0, 0, 1, 1)",
        ]
    ),
)
COMPARISONS = st.builds(
    lambda f, op, v: f"{f} {op} {v}",
    st.sampled_from(FIELDS),
    st.sampled_from(["=", "<>", "<", ">=", "LIKE", "IN", "BETWEEN", "IS", "/", "*"]),
    LITERALS,
)
SPATIAL = st.builds(
    lambda p, f, v: f"{p}({f}, {v})",
    st.sampled_from(["S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "RELATE", "T_AFTER", "BBOX"]),
    st.sampled_from(FIELDS),
    LITERALS,
)
FILTERS = st.one_of(
    st.text(max_size=60),
    COMPARISONS,
    SPATIAL,
    st.lists(st.one_of(COMPARISONS, SPATIAL), min_size=1, max_size=8).map(" AND ".join),
    st.recursive(
        COMPARISONS,
        lambda inner: (
            st.builds(
                lambda a, o, b: f"({a}) {o} ({b})", inner, st.sampled_from(["AND", "OR"]), inner
            )
            | inner.map(lambda a: f"NOT ({a})")
        ),
        max_leaves=12,
    ),
)
JSON_FILTERS = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.just({"property": "floors"}),
    ),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["op", "args", "property", "interval"]), inner, max_size=3
        )
        | st.builds(
            lambda op, args: {"op": op, "args": args},
            st.sampled_from(
                ["=", "<", "and", "or", "not", "like", "s_intersects", "in", "between"]
            ),
            st.lists(inner, max_size=3),
        )
    ),
    max_leaves=10,
).map(lambda v: __import__("json").dumps(v))
NUMBERS = st.one_of(st.integers(min_value=-(2**66), max_value=2**66), st.floats()).map(str)
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "filter": FILTERS,
        "sortby": st.lists(
            st.sampled_from(FIELDS).map(lambda f: f) | st.text(max_size=6), max_size=3
        ).map(lambda fs: ",".join(("-" if i % 2 else "+") + f for i, f in enumerate(fs))),
        "bbox": st.lists(NUMBERS, min_size=0, max_size=5).map(",".join) | st.text(max_size=20),
        "bbox-crs": st.sampled_from(["EPSG:4326", "EPSG:3857", "EPSG:34490", "", "x"]),
        "limit": NUMBERS,
        "offset": NUMBERS,
        "crs": st.sampled_from(
            ["EPSG:4490", "http://www.opengis.net/def/crs/EPSG/0/3857", "x", ""]
        ),
        "datetime": st.one_of(
            st.text(max_size=25),
            st.sampled_from(
                [
                    "2020-01-01T00:00:00Z/..",
                    "../2021-01-01",
                    "0000-01-01T00:00:00Z/..",
                    "2020-13-45",
                    "/",
                ]
            ),
        ),
        "properties": st.lists(st.sampled_from(FIELDS), max_size=4).map(",".join),
        "purpose": st.sampled_from(["走访 visit", " ", "x" * 600]),
        "filter-crs": st.sampled_from(["CRS84", "EPSG:4326", "nope"]),
    },
)


@pytest.mark.parametrize("who", ["anonymous", "worker_a"])
@pytest.mark.parametrize(
    "collection", ["buildings", "residents", "hazards", "organisations", "assets"]
)
def test_the_read_path_never_fails_with_a_server_error(client, tokens, who, collection):
    """Generated filters (text and JSON), sorts, boxes, pages, CRSs, times: never a 5xx."""
    from tests.conftest import auth

    errors = []

    @given(params=PARAMS, json_filter=st.one_of(st.none(), JSON_FILTERS))
    @settings(
        max_examples=READ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(params, json_filter):
        if json_filter is not None:
            params = params | {"filter": json_filter, "filter-lang": "cql2-json"}
        response = client.get(
            f"/collections/{collection}/items", params=params, headers=auth(tokens, who)
        )
        if response.status_code >= 500:
            errors.append(f"{params} -> {response.status_code}: {response.text[:300]}")

    run()
    assert errors == []
