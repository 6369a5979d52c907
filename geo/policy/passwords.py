"""Passwords (登录密码): an argon2id hash per user, exchanged at sign-in for a bearer token.

Why argon2id, from argon2-cffi: it is memory-hard (a guessing rig pays in RAM, not only in
cycles), it won the Password Hashing Competition and is OWASP's first choice, and argon2-cffi is
the maintained binding of its reference code. Only the hash is stored; the password is never
written to the database, the audit log or a log line.

Guessing is slowed twice: per account (after ``login_max_failures`` wrong passwords in a row the
account locks for ``login_lockout_minutes``, in the database, so every worker sees it) and per
client address (``login_attempts_per_minute`` in a sliding minute, in this process). A wrong
password and an unknown user get the same answer after the same work (an unknown user's password
is checked against a dummy hash), and unknown names lock as accounts do (in this process), so
neither the answer nor its timing says whether a user exists.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import Forbidden, Invalid, NotFound, OnemapError, TooManyRequests, Unauthorised
from geo.policy import audit
from geo.policy.roles import Viewer
from geo.policy.users import IssuedToken, issue_token
from geo.settings import SignInSettings

#: argon2-cffi's defaults (RFC 9106's low-memory profile); a hash made under older parameters is
#: remade at the next sign-in
HASHER = PasswordHasher()
MIN_LENGTH = 10
#: longer is refused when set, so a longer guess can never match; it is cut before hashing
MAX_LENGTH = 256
#: the one answer to a wrong password and to an unknown user
WRONG = "用户名或密码错误 / wrong username or password"
#: the tokens sign-in issues (ended when an administrator resets the password); scripts' tokens
#: carry other labels and keep working
SESSION_LABEL = "sign-in"
#: what a user name may be (the users table's check): anything else never reaches SQL, where a
#: failed statement would log it (a password typed into the wrong field)
USERNAME = re.compile(r"[a-z0-9_.-]{2,50}")
#: the demo city's users' password (``onemap users demo``): never for real people
DEMO_PASSWORD = "onemap-demo-2026"


class PasswordRefused(Invalid):
    """A new password that breaks the rules (too short, too long, the user name itself)."""

    title, title_zh = "Password refused", "密码不合要求"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


@cache
def _dummy_hash() -> str:
    """A hash to check unknown users' passwords against: the same work as a real check."""
    return HASHER.hash("onemap: no such user")


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password[: MAX_LENGTH + 1])
    except (VerificationError, InvalidHashError):
        return False


def check_rules(username: str, password: str) -> None:
    """Refuse a password too short to resist guessing, too long to hash cheaply, or the name."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(
            f"密码至少 {MIN_LENGTH} 个字符 / a password needs {MIN_LENGTH} characters or more"
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(
            f"密码最多 {MAX_LENGTH} 个字符 / a password has at most {MAX_LENGTH} characters"
        )
    if password.strip().lower() == username.strip().lower():
        raise PasswordRefused("密码不能与用户名相同 / the password must not be the user name")


class AttemptWindow:
    """This process's memory of sign-in attempts: per client address in a sliding minute, and the
    failures of unknown user names (so that they lock as real accounts do). Each worker keeps its
    own; the per-account lock in the database holds across them. Bounded: the oldest entries go."""

    def __init__(self, per_minute: int, span_seconds: float = 60.0, keep: int = 10_000):
        self.per_minute = per_minute
        self.span = span_seconds
        self.keep = keep
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._unknown: OrderedDict[str, tuple[int, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, address: str, now: datetime) -> None:
        """Count an attempt from ``address``; 429 with Retry-After when it is one too many."""
        at = now.timestamp()
        with self._lock:
            seen = self._seen.pop(address, None) or deque()
            while seen and seen[0] <= at - self.span:
                seen.popleft()
            if len(seen) >= self.per_minute:
                self._seen[address] = seen
                wait = math.ceil(seen[0] + self.span - at)
                raise TooManyRequests(
                    f"登录尝试过于频繁，请 {wait} 秒后再试 / too many sign-in attempts from this "
                    f"address: try again in {wait} s",
                    retry_after=wait,
                )
            seen.append(at)
            self._seen[address] = seen
            while len(self._seen) > self.keep:
                self._seen.popitem(last=False)

    def unknown_locked_until(self, username: str, now: datetime) -> datetime | None:
        with self._lock:
            _, until = self._unknown.get(username, (0, None))
        return datetime.fromtimestamp(until, UTC) if until and until > now.timestamp() else None

    def unknown_failed(self, username: str, now: datetime, settings: SignInSettings) -> None:
        with self._lock:
            count, until = self._unknown.pop(username, (0, None))
            if until is not None and until <= now.timestamp():
                count, until = 0, None
            count += 1
            if count >= settings.login_max_failures:
                until = (now + timedelta(minutes=settings.login_lockout_minutes)).timestamp()
            self._unknown[username] = (count, until)
            while len(self._unknown) > self.keep:
                self._unknown.popitem(last=False)


def _locked(until: datetime, now: datetime) -> TooManyRequests:
    wait = math.ceil((until - now).total_seconds())
    return TooManyRequests(
        f"登录失败次数过多，账户已暂时锁定，请于 {wait} 秒后再试或请管理员解锁 / too many failed "
        f"sign-ins: the account is locked until {until:%Y-%m-%dT%H:%M:%SZ}; try again then, or ask "
        "an administrator to unlock it",
        retry_after=wait,
    )


@dataclass(frozen=True)
class SignIn:
    """An attempt's outcome: a token, or the refusal to raise once the attempt's failure count
    and audit entries are committed (raised inside the transaction, they would roll back)."""

    issued: IssuedToken | None = None
    user: dict | None = None
    refusal: OnemapError | None = None

    def token(self) -> IssuedToken:
        if self.refusal is not None:
            raise self.refusal
        assert self.issued is not None
        return self.issued


def _account(conn: Connection, username: str) -> dict | None:
    """An active user with a password, its row locked: attempts on one account take turns."""
    if not USERNAME.fullmatch(username):
        return None
    row = (
        conn.execute(
            text("""SELECT u.id, u.username, u.display_name, u.role, u.password_hash,
                           u.failed_logins, u.locked_until,
                           coalesce(array(SELECT g.grid_code FROM user_grids g
                                          WHERE g.user_id = u.id ORDER BY g.grid_code), '{}') AS grids
                    FROM users u WHERE u.username = :u AND u.active FOR UPDATE OF u"""),
            {"u": username},
        )
        .mappings()
        .first()
    )
    return None if row is None or row["password_hash"] is None else dict(row)


def _check(
    conn: Connection,
    account: dict,
    password: str,
    *,
    address: str | None,
    now: datetime,
    settings: SignInSettings,
) -> OnemapError | None:
    """Check ``password`` against a known account, counting a failure and locking after too
    many; the refusal, or None when it is right (the count then starts again)."""
    who = Viewer(username=account["username"], role=account["role"])
    locked_until = account["locked_until"]
    if locked_until is not None and locked_until > now:
        return _locked(locked_until, now)
    failures = 0 if locked_until is not None else account["failed_logins"]  # a lock that ran out
    if _verify(account["password_hash"], password):
        if HASHER.check_needs_rehash(account["password_hash"]):
            conn.execute(
                text("UPDATE users SET password_hash = :h WHERE id = :id"),
                {"h": hash_password(password), "id": account["id"]},
            )
        if failures or locked_until is not None:
            conn.execute(
                text("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = :id"),
                {"id": account["id"]},
            )
        return None
    failures += 1
    lock = (
        now + timedelta(minutes=settings.login_lockout_minutes)
        if failures >= settings.login_max_failures
        else None
    )
    conn.execute(
        text("UPDATE users SET failed_logins = :f, locked_until = :l WHERE id = :id"),
        {"f": failures, "l": lock, "id": account["id"]},
    )
    detail = {"address": address, "failures": failures}
    audit.record(conn, who, "sign_in_failed", "user", who.username, detail=detail, status=401)
    if lock is not None:
        audit.record(
            conn,
            who,
            "account_locked",
            "user",
            who.username,
            detail=detail | {"until": lock},
            status=429,
        )
    return Unauthorised(WRONG)


def sign_in(
    conn: Connection,
    username: str,
    password: str,
    *,
    address: str | None,
    now: datetime,
    settings: SignInSettings,
    window: AttemptWindow | None = None,
) -> SignIn:
    """Exchange a user name and password for a bearer token (labelled ``sign-in``).

    Commit the connection's transaction before raising ``.refusal``: a failure is counted."""
    if window is not None:
        window.admit(address or "unknown", now)
    username = username.strip().lower()
    account = _account(conn, username)
    if account is None:
        until = window.unknown_locked_until(username, now) if window is not None else None
        if until is not None:
            return SignIn(refusal=_locked(until, now))
        _verify(_dummy_hash(), password)  # the same work as for a real user
        if window is not None:
            window.unknown_failed(username, now, settings)
        return SignIn(refusal=Unauthorised(WRONG))
    refusal = _check(conn, account, password, address=address, now=now, settings=settings)
    if refusal is not None:
        return SignIn(refusal=refusal)
    issued = issue_token(
        conn, account["username"], SESSION_LABEL, timedelta(days=settings.login_token_days)
    )
    who = Viewer(username=account["username"], role=account["role"])
    audit.record(
        conn, who, "sign_in", "user", who.username, detail={"address": address}, status=200
    )
    user = {
        "username": account["username"],
        "display_name": account["display_name"],
        "role": account["role"],
        "grids": list(account["grids"]),
    }
    return SignIn(issued=issued, user=user)


def set_password(
    conn: Connection, username: str, password: str, by: Viewer, now: datetime | None = None
) -> int:
    """Set a user's password (and clear any lock): ``password_set`` when the user sets their own
    or has none yet, else ``password_reset``, which also ends the user's signed-in sessions
    (scripts' tokens keep working). Returns how many sessions were ended."""
    check_rules(username, password)
    if not USERNAME.fullmatch(username):
        raise NotFound(
            f"没有用户 {username!r} / no user {username!r}: add it first (onemap users add)"
        )
    row = conn.execute(
        text(
            "SELECT id, password_hash IS NOT NULL, locked_until, district_code FROM users "
            "WHERE username = :u FOR UPDATE"
        ),
        {"u": username},
    ).first()
    if row is None or not _manages(by, username, row.district_code):
        raise NotFound(
            f"没有用户 {username!r} / no user {username!r}: add it first (onemap users add)"
        )
    user_id, had_password, locked_until, _ = row
    conn.execute(
        text("""UPDATE users SET password_hash = :h, password_changed_at = :at, failed_logins = 0,
                locked_until = NULL WHERE id = :id"""),
        {"h": hash_password(password), "at": now or datetime.now(UTC), "id": user_id},
    )
    reset = had_password and by.username != username
    ended = 0
    if reset:
        ended = conn.execute(
            text("""UPDATE api_tokens SET revoked_at = now()
                    WHERE user_id = :id AND label = :l AND revoked_at IS NULL"""),
            {"id": user_id, "l": SESSION_LABEL},
        ).rowcount
    audit.record(
        conn,
        by,
        "password_reset" if reset else "password_set",
        "user",
        username,
        detail={"sessions_ended": ended, "was_locked": locked_until is not None},
    )
    return ended


def change_own_password(
    conn: Connection,
    username: str,
    current: str,
    new: str,
    *,
    address: str | None,
    now: datetime,
    settings: SignInSettings,
    window: AttemptWindow | None = None,
) -> OnemapError | None:
    """A user changes their own password, proving the current one (a failure counts as a failed
    sign-in). Returns the refusal to raise after commit, or None when changed."""
    check_rules(username, new)  # before the current one is tried: a weak choice costs no attempt
    if window is not None:
        window.admit(address or "unknown", now)
    account = _account(conn, username)
    if account is None:  # the caller, signed in with a token, has no password yet
        return Forbidden(
            "您还没有密码，请管理员设置 / you have no password yet: an administrator sets the first one"
        )
    refusal = _check(conn, account, current, address=address, now=now, settings=settings)
    if refusal is not None:
        return refusal
    set_password(conn, username, new, Viewer(username=username, role=account["role"]), now)
    return None


def _manages(by: Viewer, username: str, district: str | None) -> bool:
    """Whether ``by`` may reset or unlock this user: a whole-city administrator anyone, one bound
    to a district only their district's users (never a whole-city one: that would hand them the
    city), and everyone themselves."""
    return by.district is None or username == by.username or district == by.district


def unlock(conn: Connection, username: str, by: Viewer) -> bool:
    """Clear a user's failure count and lock (``account_unlocked``); whether it was locked."""
    if not USERNAME.fullmatch(username):
        raise NotFound(f"没有用户 {username!r} / no user {username!r}")
    district = conn.execute(
        text("SELECT district_code FROM users WHERE username = :u"), {"u": username}
    ).first()
    if district is not None and not _manages(by, username, district[0]):
        raise NotFound(f"没有用户 {username!r} / no user {username!r}")
    row = conn.execute(
        text("""UPDATE users u SET failed_logins = 0, locked_until = NULL
                FROM (SELECT id, failed_logins, locked_until FROM users WHERE username = :u
                      FOR UPDATE) old
                WHERE u.id = old.id RETURNING old.failed_logins, old.locked_until"""),
        {"u": username},
    ).first()
    if row is None:
        raise NotFound(f"没有用户 {username!r} / no user {username!r}")
    failures, locked_until = row
    audit.record(
        conn,
        by,
        "account_unlocked",
        "user",
        username,
        detail={"failures": failures, "was_locked_until": locked_until},
    )
    return locked_until is not None


def give_demo_passwords(conn: Connection, usernames: list[str], password: str, by: Viewer) -> None:
    """The demo city's users all sign in with one known password (so the field app can be tried)."""
    for username in usernames:
        set_password(conn, username, password, by)
