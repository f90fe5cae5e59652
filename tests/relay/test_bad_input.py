"""Every class of bad input gets the exact status and a Discord-shaped error naming what
was wrong, never a 500, and the relay keeps serving afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets

from .harness import RunningRelay, User, register

MIB = 1024 * 1024


class Watch:
    """Records every status the relay answered to any client of one test."""

    def __init__(self) -> None:
        self.statuses: list[tuple[int, str]] = []
        self.clients: list[httpx.AsyncClient] = []

    async def _record(self, response: httpx.Response) -> None:
        self.statuses.append((response.status_code, str(response.request.url)))

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        http = httpx.AsyncClient(timeout=30, event_hooks={"response": [self._record]}, **kwargs)
        self.clients.append(http)
        return http

    async def user(self, api: str) -> User:
        user = await register(api)
        user.http.event_hooks["response"].append(self._record)
        self.clients.append(user.http)
        return user

    def server_errors(self) -> list[tuple[int, str]]:
        return [(status, url) for status, url in self.statuses if status >= 500]


@pytest.fixture
async def watch(relay: RunningRelay) -> AsyncIterator[Watch]:
    watch = Watch()
    try:
        yield watch
        # Whatever the test threw at it, the relay still answers a normal request.
        fresh = await watch.user(relay.api)
        me = await fresh.ok("GET", "/users/@me")
        assert me["id"] == str(fresh.id)
        assert watch.server_errors() == []
    finally:
        for http in watch.clients:
            await http.aclose()


async def setup_channel(watch: Watch, relay: RunningRelay) -> tuple[User, str]:
    owner = await watch.user(relay.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "Bad input"})
    return owner, guild["system_channel_id"]


def raw_post(user: User, path: str, content: bytes) -> Any:
    return user.request("POST", path, content=content, headers={"Content-Type": "application/json"})


def assert_body_error(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 0
    assert "JSON" in body["message"] or "nests deeper" in body["message"]


def field_error(response: httpx.Response, *path: str) -> dict[str, Any]:
    body = response.json()
    assert body["code"] == 50035, body
    node = body["errors"]
    for part in path:
        assert part in node, (path, body)
        node = node[part]
    first: dict[str, Any] = node["_errors"][0]
    assert first["code"] and first["message"]
    return first


# -- JSON that is not JSON ------------------------------------------------------------


BAD_JSON: dict[str, bytes] = {
    "nan": b'{"content": NaN}',
    "infinity": b'{"content": Infinity}',
    "-infinity": b'{"content": -Infinity}',
    "nan in an int field": b'{"content": "x", "flags": NaN}',
    "lone high surrogate": b'{"content": "\\ud800"}',
    "lone low surrogate": b'{"content": "a\\udfff b"}',
    "invalid utf-8": b'{"content": "\xff\xfe"}',
    "invalid utf-8 continuation": b'{"content": "\xc3\x28"}',
    "utf-8 encoded surrogate": b'{"content": "\xed\xa0\x80"}',
    "truncated": b'{"content": "x"',
    "trailing garbage": b'{"content": "x"} x',
    "single quotes": b"{'content': 'x'}",
}


async def test_invalid_json_is_400(relay: RunningRelay, watch: Watch) -> None:
    owner, channel = await setup_channel(watch, relay)
    for name, raw in BAD_JSON.items():
        for path in (f"/channels/{channel}/messages", "/guilds", "/users/@me"):
            method = "PATCH" if path == "/users/@me" else "POST"
            response = await owner.request(
                method, path, content=raw, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400, (name, path, response.text)
            assert_body_error(response)
    # No body at all where one is required: a form error, not a crash.
    response = await raw_post(owner, "/guilds", b"")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 50035
    assert await owner.ok("GET", f"/channels/{channel}/messages") == []
    assert await owner.ok("GET", "/users/@me/guilds") != []
    await check_deep_nesting(owner, channel)


async def check_deep_nesting(owner: User, channel: str) -> None:
    for depth in (100, 33, 5000):
        raw = b'{"content": "x", "embeds": ' + b"[" * depth + b"]" * depth + b"}"
        response = await raw_post(owner, f"/channels/{channel}/messages", raw)
        assert_body_error(response)
    deep_object = b'{"a":' * 100 + b"1" + b"}" * 100
    assert_body_error(await raw_post(owner, "/guilds", deep_object))
    # Within the limit is still just a form error (embeds are not accepted), not a crash.
    raw = b'{"content": "x", "embeds": ' + b"[" * 10 + b"]" * 10 + b"}"
    response = await raw_post(owner, f"/channels/{channel}/messages", raw)
    assert response.status_code == 400
    field_error(response, "embeds")


# -- too large ------------------------------------------------------------------------


async def test_body_over_one_mib_is_413(relay: RunningRelay, watch: Watch) -> None:
    owner, channel = await setup_channel(watch, relay)
    path = f"/channels/{channel}/messages"
    big = orjson.dumps({"content": "x" * (MIB + 10)})

    announced = await raw_post(owner, path, big)
    assert announced.status_code == 413, announced.text
    assert announced.json()["code"] == 40005

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await owner.request(
        "POST", path, content=stream(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["code"] == 40005

    # Unauthenticated routes are limited too.
    unauthenticated = watch.client()
    response = await unauthenticated.post(
        f"{relay.api}/auth/register",
        content=orjson.dumps({"username": "big", "password": "x" * (2 * MIB)}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    # Just under the limit is an ordinary (too long content) form error.
    near = orjson.dumps({"content": "x" * (MIB - 100)})
    response = await raw_post(owner, path, near)
    assert response.status_code == 400
    field_error(response, "content")
    assert await owner.ok("GET", f"/channels/{channel}/messages") == []


# -- well-formed JSON, wrong values -----------------------------------------------------


async def test_wrong_types_and_lengths_name_the_field(relay: RunningRelay, watch: Watch) -> None:
    owner, channel = await setup_channel(watch, relay)
    path = f"/channels/{channel}/messages"
    # Each user gets 5 sends per 5 s on this route, and invalid ones count too.
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"content": 5}, ("content",)),
        ({"content": None}, ("content",)),
        ({"content": ["x"]}, ("content",)),
        ({"content": "x" * 4001}, ("content",)),
        ({"content": "x", "tts": "maybe"}, ("tts",)),
        ({"content": "x", "nonce": "n" * 65}, ("nonce",)),
        (
            {"content": "x", "message_reference": {"message_id": "abc"}},
            ("message_reference", "message_id"),
        ),
        (
            {"content": "x", "message_reference": {"message_id": -1}},
            ("message_reference", "message_id"),
        ),
        (
            {"content": "x", "message_reference": {"message_id": True}},
            ("message_reference", "message_id"),
        ),
        ({"content": "x", "message_reference": "1"}, ("message_reference",)),
        (
            {"content": "x", "allowed_mentions": {"users": ["x"]}},
            ("allowed_mentions", "users", "0"),
        ),
        ({"content": "x", "sticker_ids": ["1"]}, ("sticker_ids",)),
    ]
    sender = owner
    for index, (body, path_parts) in enumerate(cases):
        if index and index % 4 == 0:
            sender = await join(watch, relay, owner, channel)
        response = await sender.request("POST", path, json=body)
        assert response.status_code == 400, (body, response.text)
        field_error(response, *path_parts)
    # The body as a whole can be the wrong type too.
    response = await owner.request("POST", "/guilds", json=["not", "an", "object"])
    assert response.status_code == 400
    assert response.json()["code"] == 50035
    response = await owner.request("POST", "/guilds", json={"name": 5})
    assert response.status_code == 400
    error = field_error(response, "name")
    assert "string" in error["message"].lower()
    await check_content_limits(await join(watch, relay, owner, channel), channel)


async def join(watch: Watch, relay: RunningRelay, owner: User, channel: str) -> User:
    member = await watch.user(relay.api)
    invite = await owner.ok("POST", f"/channels/{channel}/invites", json={"max_age": 0})
    await member.ok("POST", f"/invites/{invite['code']}", json={})
    return member


async def check_content_limits(owner: User, channel: str) -> None:
    path = f"/channels/{channel}/messages"
    too_long = await owner.request("POST", path, json={"content": "x" * 4001})
    assert too_long.status_code == 400
    error = too_long.json()["errors"]["content"]["_errors"][0]
    assert error["code"] == "STRING_TOO_LONG"
    assert "4000" in error["message"]
    for empty in ({"content": ""}, {"content": "   \n"}, {}):
        response = await owner.request("POST", path, json=empty)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == 50006
    exact = await owner.ok("POST", path, json={"content": "x" * 4000})
    assert len(exact["content"]) == 4000


async def test_ids_in_paths_and_bodies(relay: RunningRelay, watch: Watch) -> None:
    owner, channel = await setup_channel(watch, relay)
    await check_missing_and_bad_tokens(relay, watch, owner, channel)
    unknown = await owner.request(
        "POST", "/channels/123456789012345678/messages", json={"content": "x"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == 10003
    unknown = await owner.request("GET", "/channels/1/messages")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == 10003

    for bad in ("abc", "-1", "1.5", "9" * 21, str(2**63), "%F0%9F%98%80", "0x10"):
        response = await owner.request("GET", f"/channels/{bad}/messages")
        assert response.status_code == 400, (bad, response.text)
        field_error(response, "channel_id")
    response = await owner.request("GET", f"/channels/{channel}/messages/abc")
    assert response.status_code == 400
    field_error(response, "message_id")
    response = await owner.request("GET", "/users/abc")
    assert response.status_code == 400
    field_error(response, "user_id")
    response = await owner.request("GET", f"/channels/{channel}/messages", params={"before": "x"})
    assert response.status_code == 400
    field_error(response, "before")
    response = await owner.request("GET", f"/channels/{channel}/messages", params={"limit": "0"})
    assert response.status_code == 400
    field_error(response, "limit")

    first = await owner.ok("POST", f"/channels/{channel}/messages", json={"content": "first"})
    reply = await owner.ok(
        "POST",
        f"/channels/{channel}/messages",
        json={
            "content": "an int id",
            "message_reference": {"message_id": int(first["id"]), "channel_id": int(channel)},
        },
    )
    assert reply["message_reference"]["message_id"] == first["id"]
    assert isinstance(reply["id"], str)
    reply = await owner.ok(
        "POST",
        f"/channels/{channel}/messages",
        json={"content": "a string id", "message_reference": {"message_id": first["id"]}},
    )
    assert reply["message_reference"]["message_id"] == first["id"]


async def check_missing_and_bad_tokens(
    relay: RunningRelay, watch: Watch, owner: User, channel: str
) -> None:
    anonymous = watch.client()
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": "not-a-token"},
        {"Authorization": owner.token + "x"},
        {"Authorization": "Bot"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bot Bearer " + owner.token},
    ):
        for method, path, body in (
            ("GET", "/users/@me", None),
            ("GET", f"/channels/{channel}/messages", None),
            ("POST", f"/channels/{channel}/messages", {"content": "x"}),
        ):
            response = await anonymous.request(
                method, f"{relay.api}{path}", json=body, headers=headers
            )
            assert response.status_code == 401, (headers, path, response.text)
            assert response.json() == {"code": 0, "message": "401: Unauthorized"}
    # The owner's own token, also with Bot/Bearer prefixes, still works.
    for prefix in ("", "Bot ", "Bearer "):
        response = await anonymous.get(
            f"{relay.api}/users/@me", headers={"Authorization": prefix + owner.token}
        )
        assert response.status_code == 200


async def test_message_route_rate_limit_is_429(relay: RunningRelay, watch: Watch) -> None:
    owner, channel = await setup_channel(watch, relay)
    path = f"/channels/{channel}/messages"
    for n in range(5):
        response = await owner.request("POST", path, json={"content": f"m{n}"})
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(4 - n)
        assert float(response.headers["X-RateLimit-Reset-After"]) > 0
        assert response.headers["X-RateLimit-Bucket"]
    limited = await owner.request("POST", path, json={"content": "one too many"})
    assert limited.status_code == 429, limited.text
    body = limited.json()
    assert body["global"] is False
    assert 0 < body["retry_after"] <= 5
    assert "rate limited" in body["message"]
    headers = limited.headers
    assert int(headers["Retry-After"]) >= 1
    assert headers["X-RateLimit-Remaining"] == "0"
    assert 0 < float(headers["X-RateLimit-Reset-After"]) <= 5
    assert headers["X-RateLimit-Bucket"] == response.headers["X-RateLimit-Bucket"]
    assert headers["X-RateLimit-Scope"] == "user"
    assert "X-RateLimit-Global" not in headers
    # Other users and other routes are not affected.
    other = await join(watch, relay, owner, channel)
    await other.ok("POST", path, json={"content": "me too"})
    await owner.ok("GET", path)
    # The bucket refills: after retry_after one more message goes through.
    await asyncio.sleep(body["retry_after"] + 0.05)
    await owner.ok("POST", path, json={"content": "again"})
    history = await owner.ok("GET", path, params={"limit": 100})
    assert "one too many" not in {m["content"] for m in history}


# -- the gateway -----------------------------------------------------------------------


async def gateway_close_code(
    api: str, frames: list[str | bytes], *, wait_ready: bool = False
) -> int | None:
    """Open a raw gateway socket, send ``frames`` after HELLO (the first after READY
    if ``wait_ready``), and return the close code the relay chose."""
    async with httpx.AsyncClient() as http:
        url = (await http.get(f"{api}/gateway")).json()["url"]
    async with websockets.connect(f"{url}?v=10&encoding=json", max_size=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["op"] == 10
        for index, frame in enumerate(frames):
            await ws.send(frame)
            if wait_ready and index == 0:
                while True:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message["op"] == 0 and message["t"] == "READY":
                        break
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code


def identify(token: str, intents: int = 1) -> str:
    payload = {"op": 2, "d": {"token": token, "intents": intents, "properties": {"os": "t"}}}
    return orjson.dumps(payload).decode()


async def test_malformed_gateway_frames_close_with_the_right_code(
    relay: RunningRelay, watch: Watch
) -> None:
    user = await watch.user(relay.api)
    api = relay.api
    cases: list[tuple[str, list[str | bytes], int]] = [
        ("not json", ["{not json"], 4002),
        ("json array", ["[1, 2]"], 4002),
        ("nan", ['{"op": 1, "d": NaN}'], 4002),
        ("binary invalid utf-8", [b'{"op": 1, "d": "\xff"}'], 4002),
        ("lone surrogate", ['{"op": 1, "d": "\\ud800"}'], 4002),
        ("unknown op", ['{"op": 99, "d": null}'], 4001),
        ("server-only op", ['{"op": 10, "d": null}'], 4001),
        ("op as string", ['{"op": "1", "d": null}'], 4002),
        ("heartbeat d is a string", ['{"op": 1, "d": "x"}'], 4002),
        ("too large", ['{"op": 1, "d": null, "x": "' + "a" * 40_000 + '"}'], 4002),
        ("identify bad token", [identify("not-a-token")], 4004),
        ("identify without d", ['{"op": 2}'], 4002),
        ("presence before identify", ['{"op": 3, "d": {"status": "online"}}'], 4003),
        ("intents with undefined bits", [identify(user.token, intents=1 << 40)], 4013),
    ]
    for name, frames, expected in cases:
        code = await gateway_close_code(api, frames)
        assert code == expected, (name, code)
    twice = await gateway_close_code(
        api, [identify(user.token), identify(user.token)], wait_ready=True
    )
    assert twice == 4005
    # A well-behaved connection still works after all of that.
    ok = await gateway_close_code(
        api, [identify(user.token), '{"op": 1, "d": null}', '{"op": 99}'], wait_ready=True
    )
    assert ok == 4001


async def test_guessing_passwords_is_rate_limited_by_address(relay: RunningRelay) -> None:
    victim = await register(relay.api)
    async with httpx.AsyncClient() as http:
        statuses = []
        for attempt in range(25):
            response = await http.post(
                f"{relay.api}/auth/login",
                json={"login": victim.username, "password": f"guess {attempt}"},
            )
            statuses.append(response.status_code)
    assert statuses[:20] == [400] * 20
    assert 429 in statuses[20:]
    limited = statuses.index(429)
    assert limited >= 20
