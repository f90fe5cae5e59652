"""Hostile and unlucky input to files, images and search: cut-off forms, animation
bombs, members who lose access, through a real relay on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import insert

from nexus_protocol.snowflake import SnowflakeGenerator
from nexus_server.store.schema import messages

from .harness import RunningRelay, User, register, start_relay
from .test_attachments import community, download, field_error, sent, upload
from .test_media import png

BOUNDARY = "nexusboundary"


def raw_form(*parts: tuple[str, bytes]) -> bytes:
    """A multipart body built by hand, so that it can be malformed on purpose; each part
    is (its Content-Disposition parameters, its bytes)."""
    body = b""
    for disposition, data in parts:
        body += f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def post_raw(user: User, channel_id: str, body: bytes) -> httpx.Response:
    return await user.request(
        "POST",
        f"/channels/{channel_id}/messages",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


async def history(user: User, channel_id: str) -> list[str]:
    messages = await user.ok("GET", f"/channels/{channel_id}/messages")
    return [message["content"] for message in messages]


def one_pixel_gif(frames: int) -> bytes:
    """An animated GIF of ``frames`` one-pixel frames, black and white in turn (the
    encoder merges equal neighbours): tiny to send, each frame costly to re-encode."""
    pixels = [Image.new("L", (1, 1), 255 * (n % 2)) for n in range(frames)]
    out = io.BytesIO()
    pixels[0].save(out, "GIF", save_all=True, append_images=pixels[1:], duration=40)
    return out.getvalue()


@pytest.mark.no_rate_limits
async def test_cut_off_form_is_refused_and_sends_nothing(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    payload = ('name="payload_json"', json.dumps({"content": "with a file"}).encode())
    whole = raw_form(payload, ('name="files[0]"; filename="notes.txt"', b"my notes"))
    # Ends inside the file part, as a dropped upload or a client that miscounts does:
    # the parser would drop the open part and send the message without its file.
    cut = whole[: whole.rindex(b"my notes") + 4]
    refused = await post_raw(alice, general, cut)
    assert refused.status_code == 400, refused.text
    assert "closing boundary" in refused.json()["message"]
    assert "with a file" not in await history(bob, general)

    message = (await post_raw(alice, general, whole)).json()
    assert [(a["filename"], a["size"]) for a in message["attachments"]] == [("notes.txt", 8)]
    assert (await download(bob, message["attachments"][0]["url"])).content == b"my notes"


@pytest.mark.no_rate_limits
async def test_malformed_parts_name_their_field(relay: RunningRelay) -> None:
    alice, _bob, _gid, general = await community(relay)
    payload = ('name="payload_json"', b'{"content": "hi"}')
    no_filename = await post_raw(alice, general, raw_form(payload, ('name="files[0]"', b"x")))
    assert field_error(no_filename, "files[0]") == "A file part needs a filename"
    not_an_object = raw_form(
        ('name="payload_json"', b"[1, 2]"), ('name="files[0]"; filename="a.txt"', b"x")
    )
    assert field_error(await post_raw(alice, general, not_an_object), "payload_json")
    assert "hi" not in await history(alice, general)


@pytest.mark.no_rate_limits
async def test_animation_with_too_many_frames_is_kept_as_a_still(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    message = await sent(alice, general, [("many.gif", one_pixel_gif(1001))])
    (attachment,) = message["attachments"]
    assert attachment["content_type"] == "image/gif"
    stored = Image.open(io.BytesIO((await download(bob, attachment["url"])).content))
    assert getattr(stored, "n_frames", 1) == 1
    # A short animation stays animated.
    message = await sent(alice, general, [("few.gif", one_pixel_gif(3))])
    stored = Image.open(io.BytesIO((await download(bob, message["attachments"][0]["url"])).content))
    assert stored.n_frames == 3


@pytest.mark.no_rate_limits
async def test_kicked_member_gets_no_file_or_cached_preview(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    message = await sent(alice, general, [("pic.png", png(300, 200))], "a picture")
    url = message["attachments"][0]["url"]
    preview = await download(bob, url, params={"size": 64})
    assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (64, 43)
    # Editing the text keeps the file.
    edited = await alice.ok(
        "PATCH", f"/channels/{general}/messages/{message['id']}", json={"content": "edited"}
    )
    assert [a["id"] for a in edited["attachments"]] == [message["attachments"][0]["id"]]
    assert (await download(bob, url)).status_code == 200

    await alice.ok("DELETE", f"/guilds/{gid}/members/{bob.id}")
    # The preview is in the relay's memory now; it must not answer for Bob any more.
    assert (await download(bob, url, params={"size": 64})).status_code == 403
    assert (await download(bob, url)).status_code == 403
    assert (await download(alice, url, params={"size": 64})).status_code == 200


@pytest.mark.no_rate_limits
async def test_search_counts_up_to_five_thousand_and_pages_stay_whole(
    relay: RunningRelay,
) -> None:
    alice, bob, gid, general = await community(relay)
    # Thousands of messages through the route would take minutes: written straight
    # into the relay's database, as an old busy community's history would be.
    ids = SnowflakeGenerator()
    rows = [
        {
            "id": ids.next_id(),
            "channel_id": int(general),
            "guild_id": int(gid),
            "author_id": alice.id,
            "content": f"needle number {n}",
        }
        for n in range(5_030)
    ]
    async with relay.relay.db.write("test_fill") as tx:
        await tx.execute(insert(messages), rows)
    search = f"/guilds/{gid}/messages/search"
    first = await bob.ok("GET", search, params={"content": "needle"})
    assert first["total_results"] == 5_000
    assert [hit[0]["content"] for hit in first["messages"][:2]] == [
        "needle number 5029",
        "needle number 5028",
    ]
    # The furthest page there is still answers, with the oldest messages.
    last = await bob.ok("GET", search, params={"content": "needle", "offset": 5_000})
    assert [hit[0]["content"] for hit in last["messages"]][-1] == "needle number 5"
    # A narrow search still counts exactly.
    narrow = await bob.ok("GET", search, params={"content": "needle 4242"})
    assert narrow["total_results"] == 1


async def test_uploads_together_hold_at_most_the_upload_memory(tmp_path: Path) -> None:
    """Six members each sending three 2 MiB files at once: with room for one message in
    memory, the relay never holds much more than that, and every message arrives."""
    relay = await start_relay(tmp_path, rate_limits=False, upload_memory_bytes=6 << 20)
    try:
        alice, _bob, _gid, general = await community(relay)
        data = os.urandom(2 << 20)  # one object shared by every request, sent as bytes
        tracemalloc.start()
        try:
            results = await asyncio.gather(
                *(
                    upload(alice, general, [(f"{n}-{k}.bin", data) for k in range(3)])
                    for n in range(6)
                )
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert [r.status_code for r in results] == [200] * 6
        # Without the bound all six are read in at once: 36 MiB of files, 37 MiB measured.
        assert peak < 24 << 20, f"{peak / (1 << 20):.1f} MiB"
    finally:
        await relay.stop()


@pytest.mark.no_rate_limits
async def test_stranger_is_refused_before_sending_the_files(relay: RunningRelay) -> None:
    """Someone who may not post in the channel gets the answer while the upload has
    barely started, not after the relay has taken in every byte."""
    _alice, _bob, _gid, general = await community(relay)
    stranger = await register(relay.api)
    async with open_upload(relay, stranger, general) as reader:
        status = await asyncio.wait_for(reader.readline(), timeout=5)
    assert status.split()[1] in (b"403", b"404"), status


@asynccontextmanager
async def open_upload(
    relay: RunningRelay, user: User, channel_id: str
) -> AsyncIterator[asyncio.StreamReader]:
    """A file upload whose body starts (the form and a file part begun) and then stops
    arriving, as a slow-loris client sends it; yields the socket's reader."""
    host, port = relay.settings.host, relay.settings.port
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /api/v10/channels/{channel_id}/messages HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: {user.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {10 << 20}\r\n\r\n"
    )
    started = raw_form(('name="files[0]"; filename="big.bin"', b"x" * 4096))
    try:
        writer.write(head.encode() + started[:-100])
        await writer.drain()
        yield reader
    finally:
        writer.close()
        await writer.wait_closed()


async def test_stalled_upload_is_refused(tmp_path: Path) -> None:
    relay = await start_relay(tmp_path, rate_limits=False, upload_stall_seconds=0.5)
    try:
        alice, bob, _gid, general = await community(relay)
        async with open_upload(relay, alice, general) as reader:
            status = await asyncio.wait_for(reader.readline(), timeout=5)
            body = await asyncio.wait_for(reader.read(4096), timeout=5)
        assert status.split()[1] == b"400", status
        assert b"The upload stalled" in body
        assert await history(bob, general) == []
    finally:
        await relay.stop()


@pytest.mark.no_rate_limits
async def test_losing_a_role_hides_search_hits_and_files_at_once(relay: RunningRelay) -> None:
    """The permission cache is warm when the role goes: neither search nor the file
    download may answer from what it knew before."""
    alice, bob, gid, _general = await community(relay)
    crew = await alice.ok("POST", f"/guilds/{gid}/roles", json={"name": "crew"})
    private = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "crew-room"})
    for target, overwrite_type, allow, deny in ((gid, 0, 0, 1 << 10), (crew["id"], 0, 1 << 10, 0)):
        await alice.ok(
            "PUT",
            f"/channels/{private['id']}/permissions/{target}",
            json={"type": overwrite_type, "allow": str(allow), "deny": str(deny)},
        )
    await alice.ok("PUT", f"/guilds/{gid}/members/{bob.id}/roles/{crew['id']}")
    message = await sent(alice, private["id"], [("route.txt", b"the route")], "crew route")
    url = message["attachments"][0]["url"]
    search = f"/guilds/{gid}/messages/search"
    assert (await bob.ok("GET", search, params={"content": "route"}))["total_results"] == 1
    assert (await download(bob, url)).status_code == 200

    await alice.ok("DELETE", f"/guilds/{gid}/members/{bob.id}/roles/{crew['id']}")
    assert await bob.ok("GET", search, params={"content": "route"}) == {
        "total_results": 0,
        "messages": [],
    }
    assert (await download(bob, url)).status_code == 403
    assert (await alice.ok("GET", search, params={"content": "route"}))["total_results"] == 1


@pytest.mark.no_rate_limits
async def test_search_words_repeated_or_too_many(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    await alice.ok("POST", f"/channels/{general}/messages", json={"content": "summit plan"})
    search = f"/guilds/{gid}/messages/search"
    # A word typed hundreds of times is one word (each repeat was one more pass over
    # the index: 4 s over 100,000 messages).
    repeated = await bob.ok("GET", search, params={"content": "summit " * 140 + "Summit pl"})
    assert [hit[0]["content"] for hit in repeated["messages"]] == ["summit plan"]
    many = " ".join(f"word{n}" for n in range(33))
    response = await bob.request("GET", search, params={"content": many})
    assert field_error(response, "content") == "Search for at most 32 words"
