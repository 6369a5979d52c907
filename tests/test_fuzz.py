"""Schemathesis against the OpenAPI of the records routes: generated requests, as a grid worker and
as an administrator, never get a 5xx. Runs on a database of its own (generated edits may apply)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import TEST_DB, url_for

EXAMPLES = 30  # per operation: bounded, so make test stays quick


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
