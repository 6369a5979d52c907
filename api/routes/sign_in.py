"""``/auth``: sign in with a user name and password for the bearer token every other route
takes, sign out, who am I, and an administrator's password reset and unlock (geo.policy.passwords).

Scripts keep using tokens from ``onemap users token``; signing in only issues one more. Request
bodies are never logged, and no answer carries a password or its hash.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import text

from api.deps import Caller, read_engine, require_role, writing_transaction
from geo.errors import BadRequest, Forbidden, Invalid, Unauthorised, Unsupported
from geo.policy import passwords
from geo.policy.roles import Viewer
from geo.policy.users import revoke

router = APIRouter(prefix="/auth", tags=["sign-in"])
_window_lock = threading.Lock()
#: a token is a secret: no cache may keep the answer that carries one
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Credentials(BaseModel):
    """A user name and password (JSON or an HTML form)."""

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=4096)


class NewPassword(BaseModel):
    """A new password; a user changing their own also gives the current one."""

    password: str = Field(min_length=1, max_length=4096)
    current_password: str | None = Field(default=None, max_length=4096)


def _body_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }


async def credentials(request: Request) -> Credentials:
    """The credentials from a JSON body or a form; a refusal never repeats what was sent."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        data = {k: form.get(k) for k in ("username", "password") if isinstance(form.get(k), str)}
    elif kind == "application/json" or kind.endswith("+json"):
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise BadRequest(
                "请求体不是 JSON / the body is not JSON: send {username, password}"
            ) from None
    else:
        raise Unsupported("请以 JSON 或表单提交 / send JSON {username, password} or an HTML form")
    try:
        return Credentials.model_validate(data)
    except ValidationError:
        raise Invalid("请填写用户名和密码 / give a username and a password (text)") from None


def _window(request: Request) -> passwords.AttemptWindow:
    """This app's memory of sign-in attempts per client address (made on first use)."""
    state = request.app.state
    with _window_lock:
        if getattr(state, "sign_in_window", None) is None:
            limit = state.settings.sign_in.login_attempts_per_minute
            state.sign_in_window = passwords.AttemptWindow(limit)
    return state.sign_in_window


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _json(body: dict, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type="application/json",
        headers=NO_STORE,
    )


@router.post(
    "/login",
    summary="Sign in (登录): user name and password for a bearer token",
    openapi_extra=_body_schema(Credentials),
)
def login(request: Request, given: Credentials = Depends(credentials)):
    """401 for a wrong password and an unknown user alike; 429 (Retry-After) when the account is
    locked or this address tried too often."""
    with writing_transaction(request) as conn:
        attempt = passwords.sign_in(
            conn,
            given.username,
            given.password,
            address=_address(request),
            now=datetime.now(UTC),
            settings=request.app.state.settings.sign_in,
            window=_window(request),
        )
    issued = attempt.token()  # a refusal is raised only now, its failure count committed
    return _json(
        {
            "token": issued.token,
            "token_type": "Bearer",
            "expires_at": issued.expires_at,
            "user": attempt.user,
        }
    )


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").partition(" ")[2].strip()


@router.post("/logout", status_code=204, summary="Sign out (退出): revoke the caller's token")
def logout(request: Request, who: Caller):
    if who.anonymous:
        raise Unauthorised("未登录 / not signed in: send the token to revoke as a Bearer token")
    with writing_transaction(request) as conn:
        revoke(conn, token=_bearer(request))
    return Response(status_code=204, headers=NO_STORE)


@router.get("/me", summary="Who the token stands for (当前用户)")
def me(request: Request, who: Caller):
    if who.anonymous:
        raise Unauthorised("未登录 / not signed in: POST /auth/login, then send the token")
    with read_engine(request).connect() as conn:
        row = (
            conn.execute(
                text("""SELECT display_name, password_hash IS NOT NULL AS has_password,
                               password_changed_at FROM users WHERE username = :u"""),
                {"u": who.username},
            )
            .mappings()
            .one()
        )
    return _json(
        {
            "username": who.username,
            "display_name": row["display_name"],
            "role": who.role,
            "grids": sorted(who.grids),
            "has_password": row["has_password"],
            "password_changed_at": row["password_changed_at"],
        }
    )


@router.post(
    "/users/{username}/password",
    summary="Set a password (改密/重置): an administrator resets; a user changes their own",
)
def change_password(request: Request, username: str, new: NewPassword, who: Caller):
    """An administrator sets anyone's password (ending that user's signed-in sessions); a user
    changes their own by giving the current one (a wrong one counts as a failed sign-in)."""
    if who.anonymous:
        raise Unauthorised("请先登录 / sign in first")
    own = who.username == username
    if who.role == "admin" and not (own and new.current_password is not None):
        with writing_transaction(request) as conn:
            ended = passwords.set_password(conn, username, new.password, who)
        return _json({"username": username, "changed": True, "sessions_ended": ended})
    if not own:
        raise Forbidden(
            "只有管理员可以重置他人密码 / only an administrator sets another user's password"
        )
    if new.current_password is None:
        raise Invalid("请提供当前密码 / give current_password to change your own password")
    with writing_transaction(request) as conn:
        refusal = passwords.change_own_password(
            conn,
            username,
            new.current_password,
            new.password,
            address=_address(request),
            now=datetime.now(UTC),
            settings=request.app.state.settings.sign_in,
            window=_window(request),
        )
    if refusal is not None:
        raise refusal  # after the commit: the failed attempt is counted
    return _json({"username": username, "changed": True, "sessions_ended": 0})


@router.post(
    "/users/{username}/unlock", summary="Unlock an account (解锁) after failed sign-ins (admin)"
)
def unlock(request: Request, username: str, who: Viewer = Depends(require_role("admin"))):
    with writing_transaction(request) as conn:
        was_locked = passwords.unlock(conn, username, who)
    return _json({"username": username, "was_locked": was_locked})
