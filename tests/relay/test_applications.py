"""Bot applications, adding a bot to a community, and the gateway features bots rely on:
zlib-stream transport compression and op 7 RECONNECT."""

from __future__ import annotations

import zlib

import httpx
import orjson
import websockets

from .harness import RunningRelay, connect_gateway, register

SEND = (1 << 10) | (1 << 11)


async def test_application_lifecycle_and_bot_authorization(relay: RunningRelay) -> None:
    owner = await register(relay.api)
    stranger = await register(relay.api)
    guild = await owner.ok("POST", "/guilds", json={"name": "home"})
    watcher = await connect_gateway(relay.api, owner.token)
    await watcher.next_dispatch("GUILD_CREATE")

    app = await owner.ok("POST", "/applications", json={"name": "Helper Bot!"})
    assert app["bot"]["bot"] is True and app["bot"]["username"] == "helper_bot"
    assert app["id"] == app["bot"]["id"] and app["owner"]["id"] == str(owner.id)
    token = app["bot"]["token"]
    fetched = await owner.ok("GET", f"/applications/{app['id']}")
    assert "token" not in fetched["bot"] and fetched["name"] == "Helper Bot!"
    assert (await stranger.request("GET", f"/applications/{app['id']}")).status_code == 404

    async with httpx.AsyncClient(headers={"Authorization": f"Bot {token}"}) as bot:
        me = (await bot.get(f"{relay.api}/oauth2/applications/@me")).json()
        assert me["id"] == app["id"] and me["owner"]["id"] == str(owner.id)
        for key in ("description", "icon", "bot_public", "bot_require_code_grant", "verify_key"):
            assert key in me
        assert (await bot.get(f"{relay.api}/users/@me")).json()["bot"] is True

    # Adding the bot needs MANAGE_GUILD in that guild, and only grants what one holds.
    authorize = f"/oauth2/authorize?client_id={app['id']}&scope=bot&permissions={SEND}"
    body = {"guild_id": guild["id"], "permissions": str(SEND), "authorize": True}
    assert (await stranger.request("POST", authorize, json=body)).status_code == 404
    await owner.ok("POST", authorize, json=body)
    added = await watcher.next_dispatch("GUILD_MEMBER_ADD")
    assert added["d"]["user"]["id"] == app["id"] and added["d"]["user"]["bot"] is True
    roles = await owner.ok("GET", f"/guilds/{guild['id']}/roles")
    managed = [r for r in roles if r["managed"]]
    assert len(managed) == 1 and managed[0]["name"] == "Helper Bot!"
    assert managed[0]["permissions"] == str(SEND)
    assert managed[0]["tags"] == {"bot_id": app["id"]}
    assert managed[0]["id"] in added["d"]["roles"]

    # The bot's own session learns the guild; a token reset ends the old token.
    bot_gateway = await connect_gateway(relay.api, token)
    ready = await bot_gateway.next_dispatch("READY")
    assert ready["d"]["application"] == {"id": app["id"], "flags": 0}
    create = await bot_gateway.next_dispatch("GUILD_CREATE")
    assert create["d"]["id"] == guild["id"]
    await bot_gateway.close()
    reset = await owner.ok("POST", f"/applications/{app['id']}/bot/reset")
    assert reset["token"] != token
    async with httpx.AsyncClient() as http:
        old = await http.get(f"{relay.api}/users/@me", headers={"Authorization": f"Bot {token}"})
        new = await http.get(
            f"{relay.api}/users/@me", headers={"Authorization": f"Bot {reset['token']}"}
        )
    assert old.status_code == 401 and new.status_code == 200
    await watcher.close()


async def test_zlib_stream_compression_and_reconnect(relay: RunningRelay) -> None:
    user = await register(relay.api)
    url = relay.settings.gateway_url
    async with websockets.connect(f"{url}?v=10&encoding=json&compress=zlib-stream") as ws:
        inflate = zlib.decompressobj()

        async def receive() -> dict[str, object]:
            raw = await ws.recv()
            assert isinstance(raw, bytes) and raw.endswith(b"\x00\x00\xff\xff")
            frame: dict[str, object] = orjson.loads(inflate.decompress(raw))
            return frame

        assert (await receive())["op"] == 10
        identify = {"op": 2, "d": {"token": user.token, "intents": 1, "properties": {}}}
        await ws.send(orjson.dumps(identify).decode())
        ready = await receive()
        assert ready["t"] == "READY"
        session_id = ready["d"]["session_id"]  # type: ignore[index]

        entry = relay.relay.hub.find(session_id)
        assert entry is not None and entry.connection is not None
        entry.connection.request_reconnect()
        assert (await receive())["op"] == 7
        await ws.wait_closed()
        assert ws.close_code == 4000

    resumed = await connect_gateway(relay.api, user.token, resume=(session_id, ready["s"]))  # type: ignore[arg-type]
    frame = await resumed.next_dispatch("RESUMED")
    assert frame["t"] == "RESUMED" and entry.resumes == 1
    await resumed.close()
