"""Sign-in with a password (issue 15): argon2 hashes, one answer for a wrong password and an
unknown user, the lock-out and its audit, the per-address limit, and no password or hash in the
database's plain columns, the audit log, the server's log or any answer."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import running_server, settings_for

PASSWORD = "Correct-Horse-7913"


def _name(prefix: str = "pw") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _make_user(engine, role: str = "planner", password: str | None = PASSWORD, grids=()) -> str:
    from geo.policy.passwords import set_password
    from geo.policy.roles import Viewer
    from geo.policy.users import create_user

    username = _name()
    with engine.begin() as conn:
        create_user(conn, username, role, grids=tuple(grids))
        if password is not None:
            set_password(conn, username, password, Viewer("cli:test", "admin"))
    return username


def _app(db_url, **sign_in):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import SignInSettings

    rules = {"login_max_failures": 3, "login_attempts_per_minute": 1000} | sign_in
    return TestClient(create_app(settings_for(db_url, sign_in=SignInSettings(**rules))))


@pytest.fixture(scope="module")
def web(db_url):
    """The app with a lock-out after 3 failures and no practical per-address limit."""
    with _app(db_url) as client:
        yield client


@pytest.fixture(scope="module")
def admin(engine) -> dict[str, str]:
    from geo.policy.users import create_user, issue_token

    username = _name("admin")
    with engine.begin() as conn:
        create_user(conn, username, "admin")
        token = issue_token(conn, username, "script").token
    return {"Authorization": f"Bearer {token}"}


def _login(client, username, password, form=False):
    body = {"username": username, "password": password}
    return client.post("/auth/login", data=body) if form else client.post("/auth/login", json=body)


def _problem(response) -> dict:
    body = response.json()
    body.pop("request_id", None)
    return body


def _audit(engine, username: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT *, detail::text AS detail_text FROM audit_log WHERE target_id = :u ORDER BY id"
            ),
            {"u": username},
        ).mappings()
        return [dict(r) for r in rows]


def _row(engine, username: str) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM users WHERE username = :u"), {"u": username})
            .mappings()
            .one()
        )


def test_signing_in_gives_a_token_that_works(web, engine):
    username = _make_user(engine, "admin")
    r = _login(web, username, PASSWORD)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token"].startswith("om_") and body["token_type"] == "Bearer"
    assert body["user"] == {
        "username": username,
        "display_name": username,
        "role": "admin",
        "grids": [],
    }
    headers = {"Authorization": f"Bearer {body['token']}"}
    me = web.get("/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["username"] == username
    assert me.json()["has_password"] is True
    assert web.get("/audit", params={"limit": 1}, headers=headers).status_code == 200
    assert _login(web, username, PASSWORD, form=True).status_code == 200  # an HTML form too
    assert [e["action"] for e in _audit(engine, username)].count("sign_in") == 2


def test_a_grid_worker_signs_in_with_their_grids(web, engine, grids):
    username = _make_user(engine, "grid_worker", grids=(grids["A"],))
    r = _login(web, username, PASSWORD)
    assert r.status_code == 200 and r.json()["user"]["grids"] == [grids["A"]]


def test_wrong_password_and_unknown_user_answer_alike(web, engine):
    username = _make_user(engine)
    wrong = _login(web, username, "not-the-password-1")
    unknown = _login(web, _name("ghost"), "not-the-password-1")
    token_only = _login(web, _make_user(engine, password=None), "not-the-password-1")
    assert wrong.status_code == unknown.status_code == token_only.status_code == 401
    assert _problem(wrong) == _problem(unknown) == _problem(token_only)
    assert _problem(wrong)["detail"] == "用户名或密码错误 / wrong username or password"
    for header in ("content-type", "www-authenticate", "content-length"):
        assert wrong.headers.get(header) == unknown.headers.get(header), header


def test_an_unknown_user_costs_the_same_argon2_check(monkeypatch, engine):
    """Timing must not tell: an unknown user's password is checked against a dummy hash."""
    from geo.policy import passwords
    from geo.settings import SignInSettings

    checked = []
    real = passwords._verify
    monkeypatch.setattr(passwords, "_verify", lambda h, p: checked.append(h) or real(h, p))
    username = _make_user(engine)
    with engine.begin() as conn:
        for who in (username, _name("ghost")):
            passwords.sign_in(
                conn,
                who,
                "not-the-password-1",
                address="t",
                now=datetime.now(UTC),
                settings=SignInSettings(),
            )
    assert len(checked) == 2 and all(h.startswith("$argon2id$") for h in checked)


def test_odd_input_is_refused_plainly(web, admin):
    """No 500 (whose log line would carry the SQL parameters): a name that cannot be a user's
    never reaches the database."""
    odd = [
        {"json": {"username": "a\x00b", "password": "Leaky-Typed-In-Name"}},
        {"json": {"username": "Leaky\x00Name", "password": "x" * 4000}},
        {"json": [1, 2]},
        {"json": {"username": 5, "password": 6}},
        {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
        {
            "content": b"username=%FF&password=%00",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        {"content": b"", "headers": {"content-type": "text/plain"}},
    ]
    statuses = [web.post("/auth/login", **kw).status_code for kw in odd]
    assert statuses == [401, 401, 422, 422, 400, 401, 415]
    for path in ("/auth/users/a%00b/unlock", "/auth/users/no_such_user_x/unlock"):
        assert web.post(path, headers=admin).status_code in (400, 404)
    r = web.post("/auth/users/A%00B/password", json={"password": "Long-Enough-123"}, headers=admin)
    assert r.status_code in (400, 404)


def test_the_hash_is_argon2id_and_never_the_password(engine):
    username = _make_user(engine)
    row = _row(engine, username)
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]
    assert row["password_changed_at"] is not None
    with engine.connect() as conn:  # nowhere in the user's row as text either
        whole = conn.execute(
            text("SELECT u::text FROM users u WHERE username = :u"), {"u": username}
        ).scalar()
    assert PASSWORD not in whole


def test_weak_passwords_are_refused(web, engine, admin):
    username = _make_user(engine)
    for weak in ("short-1", username, username.upper(), "x" * 300):
        r = web.post(f"/auth/users/{username}/password", json={"password": weak}, headers=admin)
        assert r.status_code == 422, (weak, r.text)
        assert weak not in r.json()["detail"]
    assert _login(web, username, PASSWORD).status_code == 200  # unchanged


def test_a_password_never_leaks_into_answers_audit_or_the_log(web, engine, admin):
    from api.logs import MaskingFormatter

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    keep = Keep(logging.DEBUG)
    keep.setFormatter(MaskingFormatter(logging.Formatter("%(name)s %(message)s")))
    watched = [
        logging.getLogger(n) for n in ("", "onemap", "uvicorn", "uvicorn.error", "uvicorn.access")
    ]
    for logger in watched:
        logger.addHandler(keep)
    new = "Another-Secret-4242"
    try:
        username = _make_user(engine)
        answers = [
            _login(web, username, PASSWORD),
            _login(web, username, "wrong-password-99"),
            _login(web, username, PASSWORD, form=True),
            web.post(f"/auth/users/{username}/password", json={"password": new}, headers=admin),
            _login(web, username, new),
        ]
        token = answers[-1].json()["token"]
        own = {"Authorization": f"Bearer {token}"}
        answers.append(
            web.post(
                f"/auth/users/{username}/password",
                json={"password": PASSWORD, "current_password": new},
                headers=own,
            )
        )
        answers.append(web.get("/auth/me", headers=own))
        answers.append(web.get("/audit", params={"target_id": username}, headers=admin))
    finally:
        for logger in watched:
            logger.removeHandler(keep)
    assert [a.status_code for a in answers] == [200, 401, 200, 200, 200, 200, 200, 200]
    stored = _row(engine, username)["password_hash"]
    secrets = (PASSWORD, new, "wrong-password-99", stored, "$argon2")
    for answer in answers:
        assert not any(s in answer.text for s in secrets), answer.text
    entries = _audit(engine, username)
    assert {"sign_in", "sign_in_failed", "password_set", "password_reset"} <= {
        e["action"] for e in entries
    }
    for entry in entries:
        assert not any(s in str(entry) for s in secrets), entry
    assert not any(s in line for line in lines for s in secrets)


def test_the_served_log_carries_no_password(db_url, engine):
    """The real server, logging at debug level: its output has no password and no hash."""
    username = _make_user(engine)
    with running_server(db_url, log_level="debug") as (base, proc):
        ok = httpx.post(f"{base}/auth/login", json={"username": username, "password": PASSWORD})
        bad = httpx.post(
            f"{base}/auth/login", data={"username": username, "password": "wrong-password-77"}
        )
        garbled = httpx.post(
            f"{base}/auth/login",
            content=b'{"username": "x", "password": "Leaky-Garble-55"',
            headers={"content-type": "application/json"},
        )
    output = proc.communicate(timeout=30)[0]
    assert (ok.status_code, bad.status_code, garbled.status_code) == (200, 401, 400)
    assert "/auth/login" in output  # the access log is there
    stored = _row(engine, username)["password_hash"]
    for secret in (PASSWORD, "wrong-password-77", "Leaky-Garble-55", stored, ok.json()["token"]):
        assert secret not in output


def test_log_lines_mask_a_hash_that_reaches_them():
    from api.logs import redact
    from geo.policy.passwords import hash_password

    hashed = hash_password(PASSWORD)
    assert hashed not in redact(f"[parameters: {{'h': '{hashed}', 'id': 7}}]")


def test_the_account_locks_after_failures_in_a_row_and_an_admin_unlocks(web, engine, admin):
    username = _make_user(engine)
    for _ in range(3):
        assert _login(web, username, "wrong-password-11").status_code == 401
    right, wrong = _login(web, username, PASSWORD), _login(web, username, "wrong-password-11")
    assert right.status_code == wrong.status_code == 429
    assert 0 < int(right.headers["retry-after"]) <= 15 * 60
    assert _problem(right) == _problem(
        wrong
    )  # the lock does not say whether the password was right
    assert "锁定" in right.json()["detail"]
    row = _row(engine, username)
    assert row["failed_logins"] == 3 and row["locked_until"] > datetime.now(UTC)
    locked = [e for e in _audit(engine, username) if e["action"] == "account_locked"]
    assert len(locked) == 1 and locked[0]["actor"] == username
    assert "wrong-password-11" not in locked[0]["detail_text"]

    assert web.post(f"/auth/users/{username}/unlock").status_code == 401  # anonymous
    r = web.post(f"/auth/users/{username}/unlock", headers=admin)
    assert r.status_code == 200 and r.json() == {"username": username, "was_locked": True}
    assert [e["action"] for e in _audit(engine, username)][-1] == "account_unlocked"
    assert _login(web, username, PASSWORD).status_code == 200


def test_an_unknown_name_locks_as_an_account_does(web):
    ghost = _name("ghost")
    for _ in range(3):
        assert _login(web, ghost, "wrong-password-11").status_code == 401
    r = _login(web, ghost, "wrong-password-11")
    assert r.status_code == 429 and "锁定" in r.json()["detail"]


def test_a_success_starts_the_count_again(web, engine):
    username = _make_user(engine)
    for attempt in (
        "bad-password-1",
        "bad-password-2",
        PASSWORD,
        "bad-password-3",
        "bad-password-4",
    ):
        _login(web, username, attempt)
    row = _row(engine, username)
    assert row["failed_logins"] == 2 and row["locked_until"] is None
    assert _login(web, username, PASSWORD).status_code == 200
    assert _row(engine, username)["failed_logins"] == 0


def test_a_lock_runs_out(engine):
    from geo.errors import TooManyRequests
    from geo.policy.passwords import sign_in
    from geo.settings import SignInSettings

    rules = SignInSettings(login_max_failures=2, login_lockout_minutes=15)
    username = _make_user(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for _ in range(2):
            sign_in(conn, username, "wrong-password-1", address="t", now=now, settings=rules)
        held = sign_in(
            conn, username, PASSWORD, address="t", now=now + timedelta(minutes=14), settings=rules
        )
        assert isinstance(held.refusal, TooManyRequests)
        later = sign_in(
            conn, username, PASSWORD, address="t", now=now + timedelta(minutes=16), settings=rules
        )
    assert later.refusal is None and later.issued.token.startswith("om_")


def test_one_address_may_try_only_so_often(db_url, engine):
    username = _make_user(engine)
    with _app(db_url, login_attempts_per_minute=3) as client:
        answers = [_login(client, username, "wrong-password-1") for _ in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 401]
        r = _login(client, username, PASSWORD)  # even the right password waits
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["type"] == "/problems/too_many_requests"
    assert _row(engine, username)["failed_logins"] == 3  # the refused one was not even counted


def test_the_window_slides():
    from geo.errors import TooManyRequests
    from geo.policy.passwords import AttemptWindow

    window = AttemptWindow(per_minute=2)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    window.admit("10.0.0.1", t0)
    window.admit("10.0.0.1", t0 + timedelta(seconds=30))
    with pytest.raises(TooManyRequests) as refused:
        window.admit("10.0.0.1", t0 + timedelta(seconds=40))
    assert refused.value.headers["Retry-After"] == "20"
    window.admit("10.0.0.2", t0 + timedelta(seconds=40))  # another address is its own
    window.admit("10.0.0.1", t0 + timedelta(seconds=61))  # the first attempt has slid out


def test_an_admin_reset_ends_sessions_but_script_tokens_keep_working(web, engine, admin):
    from geo.policy.users import issue_token

    username = _make_user(engine, "planner")
    with engine.begin() as conn:
        script = issue_token(conn, username, "nightly export").token
    session = _login(web, username, PASSWORD).json()["token"]
    r = web.post(
        f"/auth/users/{username}/password", json={"password": "Brand-New-Pass-1"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1
    assert web.get("/auth/me", headers={"Authorization": f"Bearer {session}"}).status_code == 401
    assert web.get("/auth/me", headers={"Authorization": f"Bearer {script}"}).status_code == 200
    assert _login(web, username, PASSWORD).status_code == 401
    assert _login(web, username, "Brand-New-Pass-1").status_code == 200
    assert "password_reset" in [e["action"] for e in _audit(engine, username)]


def test_users_change_their_own_password_only(web, engine):
    username = _make_user(engine)
    other = _make_user(engine)
    own = {"Authorization": f"Bearer {_login(web, username, PASSWORD).json()['token']}"}
    url = f"/auth/users/{username}/password"
    assert (
        web.post(
            f"/auth/users/{other}/password", json={"password": "Hijacked-Pass-1"}, headers=own
        ).status_code
        == 403
    )
    assert web.post(url, json={"password": "Hijacked-Pass-1"}).status_code == 401
    assert web.post(url, json={"password": "Changed-Pass-12"}, headers=own).status_code == 422
    wrong = web.post(
        url, json={"password": "Changed-Pass-12", "current_password": "nope-nope-nope"}, headers=own
    )
    assert wrong.status_code == 401 and _row(engine, username)["failed_logins"] == 1
    ok = web.post(
        url, json={"password": "Changed-Pass-12", "current_password": PASSWORD}, headers=own
    )
    assert ok.status_code == 200
    assert _login(web, username, "Changed-Pass-12").status_code == 200
    assert "password_set" in [e["action"] for e in _audit(engine, username)]


def test_signing_out_revokes_the_token(web, engine):
    username = _make_user(engine)
    token = _login(web, username, PASSWORD).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert web.post("/auth/logout", headers=headers).status_code == 204
    assert web.get("/auth/me", headers=headers).status_code == 401
    assert web.post("/auth/logout").status_code == 401


def test_the_command_line_adds_a_user_with_a_password_then_they_sign_in(
    web, engine, db_url, monkeypatch
):
    from typer.testing import CliRunner

    from api.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    username = _name("cli")
    added = CliRunner().invoke(
        app,
        ["users", "add", username, "--role", "planner", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    assert _login(web, username, PASSWORD).status_code == 200
    weak = CliRunner().invoke(
        app,
        ["users", "add", _name("cli"), "--role", "planner", "--password-stdin"],
        input="short\n",
    )
    assert weak.exit_code == 1 and "10" in weak.output
    typed = CliRunner().invoke(
        app, ["users", "password", username], input="Typed-Twice-123\nTyped-Twice-123\n"
    )
    assert typed.exit_code == 0, typed.output
    assert "Typed-Twice-123" not in typed.output
    for _ in range(3):
        _login(web, username, "wrong-password-1")
    assert _login(web, username, "Typed-Twice-123").status_code == 429
    unlocked = CliRunner().invoke(app, ["users", "unlock", username])
    assert unlocked.exit_code == 0 and "unlocked" in unlocked.output
    assert _login(web, username, "Typed-Twice-123").status_code == 200
    actions = [e["action"] for e in _audit(engine, username)]
    assert {"password_set", "password_reset", "account_locked", "account_unlocked"} <= set(actions)
    plain = CliRunner().invoke(
        app, ["users", "add", _name("cli"), "--role", "planner"]
    )  # as before
    assert plain.exit_code == 0, plain.output


def test_the_demo_users_sign_in_with_the_demo_password(web, engine, db_url, monkeypatch):
    from typer.testing import CliRunner

    from api.cli import app
    from geo.policy.passwords import DEMO_PASSWORD

    monkeypatch.setenv("DATABASE_URL", db_url)
    result = CliRunner().invoke(app, ["users", "demo"])
    assert result.exit_code == 0, result.output
    assert DEMO_PASSWORD in result.output  # printed, once
    r = _login(web, "worker_a", DEMO_PASSWORD)
    assert r.status_code == 200 and r.json()["user"]["role"] == "grid_worker"
