"""Users, roles and bearer tokens.

A token is 32 random bytes from ``secrets`` (URL-safe text), shown once when issued and stored only
as its SHA-256: a high-entropy random secret needs no slow password hash, and a hash lets the
database find the token in one indexed lookup. Tokens expire and can be revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest
from geo.policy.district_scope import check_district
from geo.policy.roles import ROLES, Viewer

TOKEN_PREFIX = "om_"


class UserError(BadRequest):
    """A user or token operation that cannot be done as asked."""


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once
    token_id: int
    expires_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    conn: Connection,
    username: str,
    role: str,
    display_name: str | None = None,
    grids: tuple[str, ...] = (),
    district: str | None = None,
) -> int:
    """Create (or update) a user; ``district``: the one district they read in (None: the city)."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    if role == "grid_worker" and not grids:
        raise UserError("a grid worker must be bound to at least one grid (--grid CODE)")
    if grids and role != "grid_worker":
        raise UserError("only grid workers are bound to grids")
    known = {
        r[0]
        for r in conn.execute(
            text("SELECT code FROM grids WHERE code = ANY(:g)"), {"g": list(grids)}
        )
    }
    missing = sorted(set(grids) - known)
    if missing:
        raise UserError(f"no such grid: {', '.join(missing)}")
    if district is not None:
        try:
            district = check_district(conn, district)
        except BadRequest as exc:
            raise UserError(str(exc)) from exc
        outside = sorted(g for g in grids if g[:6] != district)
        if outside:
            raise UserError(f"grids {', '.join(outside)} are not in district {district}")
    user_id = conn.execute(
        text("""INSERT INTO users (username, display_name, role, district_code)
                VALUES (:u, :d, :r, :district)
                ON CONFLICT (username) DO UPDATE SET display_name = EXCLUDED.display_name,
                    role = EXCLUDED.role, district_code = EXCLUDED.district_code, active = true
                RETURNING id"""),
        {"u": username, "d": display_name or username, "r": role, "district": district},
    ).scalar_one()
    conn.execute(text("DELETE FROM user_grids WHERE user_id = :id"), {"id": user_id})
    for grid in grids:
        conn.execute(
            text("INSERT INTO user_grids (user_id, grid_code) VALUES (:id, :g)"),
            {"id": user_id, "g": grid},
        )
    return user_id


def issue_token(
    conn: Connection,
    username: str,
    label: str | None = None,
    expires_in: timedelta | None = timedelta(days=90),
) -> IssuedToken:
    user_id = conn.execute(
        text("SELECT id FROM users WHERE username = :u AND active"), {"u": username}
    ).scalar()
    if user_id is None:
        raise UserError(f"no active user {username!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + expires_in if expires_in else None
    token_id = conn.execute(
        text(
            "INSERT INTO api_tokens (user_id, token_hash, label, expires_at) VALUES (:u, :h, :l, :e) RETURNING id"
        ),
        {"u": user_id, "h": token_hash(token), "l": label, "e": expires},
    ).scalar_one()
    return IssuedToken(token, token_id, expires)


def revoke(conn: Connection, token: str | None = None, username: str | None = None) -> int:
    """Revoke one token, or every token of a user; returns how many were revoked."""
    if token:
        sql, params = "token_hash = :h", {"h": token_hash(token)}
    elif username:
        sql, params = "user_id = (SELECT id FROM users WHERE username = :u)", {"u": username}
    else:
        raise UserError("say which token or which user to revoke")
    return conn.execute(
        text(f"UPDATE api_tokens SET revoked_at = now() WHERE {sql} AND revoked_at IS NULL"), params
    ).rowcount


def viewer_for_token(conn: Connection, token: str) -> Viewer | None:
    """The caller a token stands for, or None if it is unknown, revoked or expired."""
    row = conn.execute(
        text("""SELECT u.username, u.role,
                       coalesce(array_agg(g.grid_code) FILTER (WHERE g.grid_code IS NOT NULL), '{}'),
                       u.district_code
                FROM api_tokens t JOIN users u ON u.id = t.user_id
                LEFT JOIN user_grids g ON g.user_id = u.id
                WHERE t.token_hash = :h AND t.revoked_at IS NULL AND u.active
                  AND (t.expires_at IS NULL OR t.expires_at > now())
                GROUP BY u.username, u.role, u.district_code"""),
        {"h": token_hash(token)},
    ).first()
    if row is None:
        return None
    return Viewer(username=row[0], role=row[1], grids=frozenset(row[2]), district=row[3])


DEMO_USERS = (  # username, role, display name
    ("visitor", "public", "公众访客 visitor"),
    ("investor", "investment", "招商专员 investment officer"),
    ("planner", "planner", "规划师 planner"),
    ("worker_a", "grid_worker", "网格员甲 grid worker A"),
    ("worker_b", "grid_worker", "网格员乙 grid worker B"),
    ("safety", "safety", "安全员 safety officer"),
    ("admin", "admin", "管理员 administrator"),
)


def create_demo_users(conn: Connection) -> list[tuple[str, str, tuple[str, ...], str]]:
    """One user of each role (two grid workers, in two grids of 永阳街道), each with a fresh token.

    Returns (username, role, grids, token) rows for printing.
    """
    grids = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT code FROM grids WHERE code LIKE '320117001%' ORDER BY households DESC, code LIMIT 2"
            )
        )
    ]
    if len(grids) < 2:
        raise UserError("load the demo city first: its grids are missing")
    bound = {"worker_a": (grids[0],), "worker_b": (grids[1],)}
    out = []
    for username, role, name in DEMO_USERS:
        if role == "public":
            continue  # anonymous needs no token; the row documents the role
        create_user(conn, username, role, name, bound.get(username, ()))
        revoke(conn, username=username)
        out.append(
            (username, role, bound.get(username, ()), issue_token(conn, username, "demo").token)
        )
    return out
