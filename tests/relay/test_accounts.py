"""Accounts: register, log in and out, sessions, passwords and profiles, through the
real relay as an app would use them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nexus_server.store.schema import users

from .harness import RunningRelay, User, connect_gateway, register

PASSWORD = "correct horse battery"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def field_error(response: httpx.Response, *path: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 50035, body
    node = body["errors"]
    for part in path:
        assert part in node, (path, body)
        node = node[part]
    first: dict[str, Any] = node["_errors"][0]
    return first


async def login(
    http: httpx.AsyncClient, api: str, name: str, password: str = PASSWORD, agent: str = ""
) -> httpx.Response:
    body = {"login": name, "password": password}
    if agent:
        body["user_agent"] = agent
    return await http.post(f"{api}/auth/login", json=body)


async def as_token(http: httpx.AsyncClient, api: str, token: str, path: str) -> httpx.Response:
    return await http.get(f"{api}{path}", headers={"Authorization": token})


async def test_register_and_the_token_works(relay: RunningRelay, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{relay.api}/auth/register",
        json={"username": "Ada_Lovelace", "password": PASSWORD, "display_name": "Ada"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert user["username"] == "ada_lovelace"  # usernames are folded to lower case
    assert user["global_name"] == "Ada"
    assert user["discriminator"] == "0"
    assert "email" not in user and "phone" not in user
    me = await as_token(http, relay.api, body["token"], "/users/@me")
    assert me.status_code == 200
    assert me.json() == user

    # Taken, in any case.
    for name in ("ada_lovelace", "ADA_LOVELACE"):
        taken = await http.post(
            f"{relay.api}/auth/register", json={"username": name, "password": PASSWORD}
        )
        assert field_error(taken, "username")["code"] == "USERNAME_ALREADY_TAKEN"
    # Malformed registrations name the field.
    bad: list[tuple[dict[str, Any], str]] = [
        ({"username": "a", "password": PASSWORD}, "username"),
        ({"username": "has space", "password": PASSWORD}, "username"),
        ({"username": "x" * 33, "password": PASSWORD}, "username"),
        ({"username": "fine_name", "password": "short"}, "password"),
        ({"username": "fine_name", "password": 12345678}, "password"),
        ({"username": "fine_name"}, "password"),
        ({"username": "fine_name", "password": PASSWORD, "display_name": "d" * 33}, "display_name"),
    ]
    for payload, field in bad:
        field_error(await http.post(f"{relay.api}/auth/register", json=payload), field)

    # Login by name (any case) works; a wrong password and an unknown name get the same
    # error, naming `login`.
    ok = await login(http, relay.api, "Ada_Lovelace")
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["id"] == user["id"]
    assert ok.json()["token"] != body["token"]
    wrong = await login(http, relay.api, "ada_lovelace", "wrong password")
    unknown = await login(http, relay.api, "nobody_here", "wrong password")
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json()
    assert field_error(wrong, "login")["code"] == "INVALID_LOGIN"
    field_error(await http.post(f"{relay.api}/auth/login", json={"login": "ada"}), "password")


async def test_sessions_revoke_and_logout(relay: RunningRelay, http: httpx.AsyncClient) -> None:
    api = relay.api
    alice = await register(api)
    # The registration opened one session; two logins open two more.
    first = (await login(http, api, alice.username, agent="phone")).json()["token"]
    second = (await login(http, api, alice.username, agent="laptop")).json()["token"]
    sessions = (await as_token(http, api, first, "/auth/sessions")).json()
    assert len(sessions) == 3
    assert [s["current"] for s in sessions].count(True) == 1
    current = next(s for s in sessions if s["current"])
    assert current["user_agent"] == "phone"
    assert {s["user_agent"] for s in sessions} >= {"phone", "laptop"}
    for session in sessions:
        assert set(session) == {"id", "created_at", "last_used_at", "user_agent", "current"}
        assert session["id"].isdigit()
    # Seen from another token, another session is current.
    other_view = (await as_token(http, api, second, "/auth/sessions")).json()
    assert next(s for s in other_view if s["current"])["user_agent"] == "laptop"

    # Revoking the laptop session from the phone: the laptop's token is dead.
    laptop = next(s for s in sessions if s["user_agent"] == "laptop")
    revoked = await http.delete(
        f"{api}/auth/sessions/{laptop['id']}", headers={"Authorization": first}
    )
    assert revoked.status_code == 204
    assert (await as_token(http, api, second, "/users/@me")).status_code == 401
    assert (await as_token(http, api, first, "/users/@me")).status_code == 200
    # Revoking it again, or someone else's session, or a non-id: errors, not crashes.
    again = await http.delete(
        f"{api}/auth/sessions/{laptop['id']}", headers={"Authorization": first}
    )
    assert again.status_code == 404
    assert again.json()["code"] == 10020
    bob = await register(api)
    bobs = await bob.ok("GET", "/auth/sessions")
    foreign = await http.delete(
        f"{api}/auth/sessions/{bobs[0]['id']}", headers={"Authorization": first}
    )
    assert foreign.status_code == 404
    assert (await bob.request("GET", "/users/@me")).status_code == 200
    not_an_id = await http.delete(f"{api}/auth/sessions/abc", headers={"Authorization": first})
    field_error(not_an_id, "session_id")

    # Logout ends only the current session.
    out = await http.post(f"{api}/auth/logout", headers={"Authorization": first})
    assert out.status_code == 204
    assert (await as_token(http, api, first, "/users/@me")).status_code == 401
    assert (await alice.request("GET", "/users/@me")).status_code == 200
    remaining = await alice.ok("GET", "/auth/sessions")
    assert len(remaining) == 1 and remaining[0]["current"]


async def test_change_password(relay: RunningRelay, http: httpx.AsyncClient) -> None:
    api = relay.api
    alice = await register(api)
    other = (await login(http, api, alice.username)).json()["token"]
    third = (await login(http, api, alice.username)).json()["token"]

    wrong = await alice.request(
        "POST", "/auth/password", json={"password": "not it", "new_password": "new password 1"}
    )
    assert field_error(wrong, "password")["code"] == "PASSWORD_DOES_NOT_MATCH"
    weak = await alice.request(
        "POST", "/auth/password", json={"password": PASSWORD, "new_password": "short"}
    )
    field_error(weak, "new_password")
    # Failed attempts change nothing.
    assert (await as_token(http, api, other, "/users/@me")).status_code == 200

    changed = await alice.request(
        "POST", "/auth/password", json={"password": PASSWORD, "new_password": "new password 1"}
    )
    assert changed.status_code == 204, changed.text
    for token in (other, third):
        assert (await as_token(http, api, token, "/users/@me")).status_code == 401
    assert (await alice.request("GET", "/users/@me")).status_code == 200
    assert len(await alice.ok("GET", "/auth/sessions")) == 1
    assert (await login(http, api, alice.username)).status_code == 400
    fresh = await login(http, api, alice.username, "new password 1")
    assert fresh.status_code == 200
    assert (await as_token(http, api, fresh.json()["token"], "/users/@me")).status_code == 200


async def test_profile(relay: RunningRelay, http: httpx.AsyncClient) -> None:
    api = relay.api
    alice = await register(api)
    bob = await register(api)
    changes = {
        "bio": "Reads a lot. 📚",
        "pronouns": "she/her",
        "accent_color": 0xFFFFFF,
        "global_name": "Alice",
    }
    updated = await alice.ok("PATCH", "/users/@me", json=changes)
    for key, value in changes.items():
        assert updated[key] == value, key
    assert await alice.ok("GET", "/users/@me") == updated
    # Everyone can see a profile by id, and it is the same one.
    seen = await bob.ok("GET", f"/users/{alice.id}")
    assert seen == updated
    # Fields not sent are untouched; null clears what may be cleared.
    partial = await alice.ok("PATCH", "/users/@me", json={"accent_color": 0, "global_name": None})
    assert partial["accent_color"] == 0
    assert partial["global_name"] is None
    assert partial["bio"] == changes["bio"]
    cleared = await alice.ok("PATCH", "/users/@me", json={"bio": None, "pronouns": None})
    assert not cleared["bio"] and not cleared["pronouns"]
    assert cleared["username"] == alice.username
    unchanged = await alice.ok("PATCH", "/users/@me", json={})
    assert unchanged == cleared
    field_error(await alice.request("PATCH", "/users/@me", json={"username": None}), "username")

    invalid: list[tuple[dict[str, Any], str]] = [
        ({"accent_color": 0x1000000}, "accent_color"),
        ({"accent_color": -1}, "accent_color"),
        ({"accent_color": "red"}, "accent_color"),
        ({"bio": "b" * 191}, "bio"),
        ({"pronouns": "p" * 41}, "pronouns"),
        ({"global_name": "g" * 33}, "global_name"),
        ({"avatar": "a" * 257}, "avatar"),
        ({"username": "Not Valid!"}, "username"),
        ({"username": bob.username}, "username"),
    ]
    for payload, field in invalid:
        field_error(await alice.request("PATCH", "/users/@me", json=payload), field)
    assert await alice.ok("GET", "/users/@me") == cleared
    # Exactly at the limits is fine.
    edge = await alice.ok("PATCH", "/users/@me", json={"bio": "b" * 190, "pronouns": "p" * 40})
    assert len(edge["bio"]) == 190

    missing = await alice.request("GET", "/users/123456789012345678")
    assert missing.status_code == 404
    assert missing.json()["code"] == 10013
    field_error(await alice.request("GET", "/users/abc"), "user_id")
    anonymous = await http.get(f"{api}/users/{alice.id}")
    assert anonymous.status_code == 401


async def test_no_email_or_phone_and_argon2id(relay: RunningRelay, http: httpx.AsyncClient) -> None:
    schema = (await http.get(f"{relay.api}/openapi.json")).json()
    register_body = schema["components"]["schemas"]["RegisterBody"]
    assert set(register_body["properties"]) == {"username", "password", "display_name"}
    assert set(register_body["required"]) == {"username", "password"}
    # No request body anywhere has an e-mail or phone field.
    for name, component in schema["components"]["schemas"].items():
        for prop in component.get("properties", {}):
            assert "mail" not in prop.lower() and "phone" not in prop.lower(), (name, prop)

    user: User = await register(relay.api, password=PASSWORD)
    async with relay.relay.db.read("test") as tx:
        stored = (
            await tx.execute(select(users.c.password_hash).where(users.c.id == user.id))
        ).scalar_one()
    assert stored.startswith("$argon2id$"), stored
    assert PASSWORD not in stored
    # And the token is not stored either: only its hash.
    async with relay.relay.db.read("test") as tx:
        rows = (await tx.execute(select(users))).mappings().all()
    assert all(user.token not in str(dict(row)) for row in rows)


async def test_revoking_a_session_closes_its_gateway_connection(relay: RunningRelay) -> None:
    alice = await register(relay.api, password=PASSWORD)
    async with httpx.AsyncClient() as http:
        second = await http.post(
            f"{relay.api}/auth/login", json={"login": alice.username, "password": PASSWORD}
        )
    other_token = second.json()["token"]
    other = await connect_gateway(relay.api, other_token)
    await other.next_dispatch("READY")
    mine = await connect_gateway(relay.api, alice.token)
    await mine.next_dispatch("READY")

    sessions = await alice.ok("GET", "/auth/sessions")
    (stolen,) = [s for s in sessions if not s["current"]]
    await alice.ok("DELETE", f"/auth/sessions/{stolen['id']}")

    # The revoked token's socket is closed as an authentication failure (no resume)…
    assert other.reader is not None
    await asyncio.wait_for(other.reader, 10)
    assert other.close_code == 4004
    # …while the session that did the revoking keeps its connection.
    assert mine.close_code is None
    await mine.close()
