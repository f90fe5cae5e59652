"""Files on messages: uploaded as multipart/form-data the way discord.py sends them,
checked and cleaned by the relay, served to those who may read the channel, through a
real relay on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from nexus_server.store.schema import attachments

from .harness import RunningRelay, User, connect_gateway, register, start_relay
from .test_media import CAMERA, photo, png

VIEW_CHANNEL = 1 << 10
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16

FileSpec = tuple[str, bytes]


def form(
    files: list[FileSpec], content: str = "", **payload: Any
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
    """``payload_json`` and ``files[N]`` parts, shaped as discord.py shapes them."""
    body = {"content": content, **payload}
    body["attachments"] = [{"id": n, "filename": name} for n, (name, _) in enumerate(files)]
    parts = [
        (f"files[{n}]", (name, data, "application/octet-stream"))
        for n, (name, data) in enumerate(files)
    ]
    return {"payload_json": json.dumps(body)}, parts


async def upload(
    user: User, channel_id: str, files: list[FileSpec], content: str = "", **payload: Any
) -> httpx.Response:
    data, parts = form(files, content, **payload)
    return await user.request("POST", f"/channels/{channel_id}/messages", data=data, files=parts)


async def sent(
    user: User, channel_id: str, files: list[FileSpec], content: str = ""
) -> dict[str, Any]:
    response = await upload(user, channel_id, files, content)
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    return message


def field_error(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 50035, body
    assert list(body["errors"]) == [field], body
    message: str = body["errors"][field]["_errors"][0]["message"]
    return message


async def community(relay: RunningRelay) -> tuple[User, User, str, str]:
    alice = await register(relay.api)
    bob = await register(relay.api)
    guild = await alice.ok("POST", "/guilds", json={"name": "Photographers"})
    general = guild["system_channel_id"]
    invite = await alice.ok("POST", f"/channels/{general}/invites", json={})
    await bob.ok("POST", f"/invites/{invite['code']}", json={})
    return alice, bob, guild["id"], general


async def download(user: User, url: str, **kwargs: Any) -> httpx.Response:
    return await user.http.get(url, **kwargs)


@pytest.mark.no_rate_limits
async def test_one_and_three_files_with_history_and_events(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    gateway = await connect_gateway(relay.api, bob.token)
    await gateway.next_dispatch("GUILD_CREATE")
    notes = b"line one\nline two\n"

    one = await sent(alice, general, [("notes.txt", notes)], "my notes")
    assert one["content"] == "my notes"
    [attachment] = one["attachments"]
    assert attachment["filename"] == "notes.txt"
    assert attachment["size"] == len(notes)
    assert attachment["content_type"] == "text/plain"
    assert "width" not in attachment
    assert attachment["spoiler"] is False
    assert attachment["url"] == attachment["proxy_url"]
    assert attachment["url"] == (
        f"{relay.settings.base_url}/attachments/{general}/{attachment['id']}/notes.txt"
    )
    event = await gateway.next_dispatch("MESSAGE_CREATE")
    assert event["d"]["attachments"] == one["attachments"]

    three = await sent(
        alice,
        general,
        [("a.png", png(40, 30)), ("SPOILER_b.bin", b"\x00\x01\x02"), ("c.jpg", photo(64, 48))],
    )
    assert three["content"] == ""
    names = [(a["filename"], a["content_type"], a.get("width")) for a in three["attachments"]]
    assert names == [
        ("a.png", "image/png", 40),
        ("SPOILER_b.bin", "application/octet-stream", None),
        ("c.jpg", "image/jpeg", 64),
    ]
    assert [a["spoiler"] for a in three["attachments"]] == [False, True, False]
    assert (await gateway.next_dispatch("MESSAGE_CREATE"))["d"]["id"] == three["id"]
    await gateway.close()

    history = await bob.ok("GET", f"/channels/{general}/messages")
    by_id = {m["id"]: m["attachments"] for m in history}
    assert by_id[one["id"]] == one["attachments"]
    assert by_id[three["id"]] == three["attachments"]
    single = await bob.ok("GET", f"/channels/{general}/messages/{three['id']}")
    assert single["attachments"] == three["attachments"]
    # Bob downloads each file as it was sent (images as the relay re-encoded them).
    got = await download(bob, attachment["url"])
    assert got.status_code == 200 and got.content == notes
    image = await download(bob, three["attachments"][0]["url"])
    assert Image.open(io.BytesIO(image.content)).size == (40, 30)


async def test_limits_and_errors_name_the_field(relay: RunningRelay, tmp_path: Path) -> None:
    small = await start_relay(tmp_path / "small", max_attachment_bytes=1024, rate_limits=False)
    try:
        alice, _bob, _gid, general = await community(small)
        near = b"x" * 1024
        ok = await sent(alice, general, [("edge.bin", near)])
        assert ok["attachments"][0]["size"] == 1024
        too_big = await upload(alice, general, [("a.txt", b"a"), ("b.bin", near + b"!")])
        assert field_error(too_big, "files[1]") == "File too large (at most 0.000976562 MiB)"
        empty = await upload(alice, general, [("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"")])
        assert field_error(empty, "files[2]") == "The file is empty"
        eleven = await upload(alice, general, [(f"{n}.txt", b"n") for n in range(11)])
        assert "at most 10" in field_error(eleven, "files")
        ten = await sent(alice, general, [(f"{n}.txt", b"n") for n in range(10)])
        assert len(ten["attachments"]) == 10
        # Nothing at all to send is still refused.
        response = await alice.request(
            "POST", f"/channels/{general}/messages", json={"content": " "}
        )
        assert response.status_code == 400 and response.json()["code"] == 50006
        bad_json = await alice.request(
            "POST",
            f"/channels/{general}/messages",
            data={"payload_json": "{nope"},
            files=[("files[0]", ("a.txt", b"a", "text/plain"))],
        )
        assert "payload_json" in field_error(bad_json, "payload_json")
        # A body past every file's limit is cut off before it is read.
        huge = await upload(alice, general, [("big.bin", b"y" * 1200 * 1024)])
        assert huge.status_code == 413
    finally:
        await small.stop()


@pytest.mark.no_rate_limits
async def test_attach_files_permission(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    await alice.ok(
        "PUT",
        f"/channels/{general}/permissions/{bob.id}",
        json={"type": 1, "allow": "0", "deny": str(ATTACH_FILES)},
    )
    denied = await upload(bob, general, [("cat.txt", b"meow")], "look")
    assert denied.status_code == 403, denied.text
    assert denied.json()["code"] == 50013
    # Text alone still goes through.
    await bob.ok("POST", f"/channels/{general}/messages", json={"content": "fine, text"})
    async with relay.relay.db.read("test") as tx:
        assert (await tx.execute(select(func.count()).select_from(attachments))).scalar() == 0


@pytest.mark.no_rate_limits
async def test_images_lose_their_metadata(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    original = photo(320, 200, gps=True)
    assert CAMERA.encode() in original
    message = await sent(alice, general, [("holiday.jpg", original)])
    [attachment] = message["attachments"]
    assert (attachment["width"], attachment["height"]) == (320, 200)
    served = await download(bob, attachment["url"])
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["content-disposition"].startswith("inline")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert CAMERA.encode() not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.size == (320, 200)
        assert not image.getexif()
        # Still the same picture: red on the left, blue on the right.
        red = image.convert("RGB").getpixel((10, 100))
        blue = image.convert("RGB").getpixel((310, 100))
    assert isinstance(red, tuple) and red[0] > 150 and red[2] < 80
    assert isinstance(blue, tuple) and blue[2] > 150 and blue[0] < 80
    # The client's claimed type counts for nothing: a PNG named .txt is an image.
    disguised = await sent(alice, general, [("readme.txt", png(8, 8))])
    assert disguised["attachments"][0]["content_type"] == "image/png"

    # Previews: a power of two bounds the longest side; cached with a strong ETag.
    preview = await download(bob, attachment["url"], params={"size": 64})
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(preview.content)).size == (64, 40)
    again = await download(
        bob,
        attachment["url"],
        params={"size": 64},
        headers={"If-None-Match": preview.headers["etag"]},
    )
    assert again.status_code == 304 and not again.content
    assert preview.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert preview.headers["etag"] != served.headers["etag"]
    bad_size = await download(bob, attachment["url"], params={"size": 100})
    assert bad_size.status_code == 400 and "size" in bad_size.json()["errors"]


@pytest.mark.no_rate_limits
async def test_other_files_download_as_sent(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    page = b"<html><script>alert('hi')</script></html>"
    message = await sent(alice, general, [("page.html", page)])
    [attachment] = message["attachments"]
    assert attachment["content_type"] == "text/html"
    served = await download(bob, attachment["url"])
    assert served.content == page
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith('attachment; filename="page.html"')
    etag = served.headers["etag"]
    again = await download(bob, attachment["url"], headers={"If-None-Match": etag})
    assert again.status_code == 304
    # A file named like a picture that is not one is a plain download too.
    fake = await sent(alice, general, [("cat.png", b"not really a png")])
    assert fake["attachments"][0]["content_type"] == "application/octet-stream"
    assert "width" not in fake["attachments"][0]


@pytest.mark.no_rate_limits
async def test_hostile_filenames(relay: RunningRelay) -> None:
    alice, bob, _gid, general = await community(relay)
    long_name = "a" * 300 + ".txt"
    message = await sent(
        alice,
        general,
        [
            ("../../etc/passwd", b"root"),
            ("a\x00b.png", b"zero"),
            (long_name, b"long"),
            ("invoice\u202egnp.exe", b"rtl"),
            ("..\\..\\boot.ini", b"win"),
            ("...", b"dots"),
        ],
    )
    names = [a["filename"] for a in message["attachments"]]
    assert names[0] == "passwd"
    assert names[1] == "ab.png"
    assert len(names[2].encode()) == 255 and names[2].endswith(".txt")
    assert names[3] == "invoicegnp.exe"
    assert names[4] == "boot.ini"
    assert names[5] == "unknown"
    for attachment in message["attachments"]:
        got = await download(bob, attachment["url"])
        assert got.status_code == 200, (attachment["filename"], got.text)
    # The URL needs the right name too: an id alone finds nothing.
    first = message["attachments"][0]
    wrong = first["url"].rsplit("/", 1)[0] + "/shadow"
    assert (await download(bob, wrong)).status_code == 404


@pytest.mark.no_rate_limits
async def test_who_may_fetch(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    staff = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "staff"})
    message = await sent(alice, staff["id"], [("plan.txt", b"secret plan")])
    url = message["attachments"][0]["url"]
    assert (await download(bob, url)).status_code == 200
    await alice.ok(
        "PUT",
        f"/channels/{staff['id']}/permissions/{bob.id}",
        json={"type": 1, "allow": "0", "deny": str(VIEW_CHANNEL)},
    )
    assert (await download(bob, url)).status_code == 403
    stranger = await register(relay.api)
    assert (await download(stranger, url)).status_code == 403
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(url)).status_code == 401
    # The same attachment under another channel's path is not there.
    other = url.replace(f"/attachments/{staff['id']}/", f"/attachments/{general}/")
    assert (await download(alice, other)).status_code == 404


@pytest.mark.no_rate_limits
async def test_deleting_the_message_or_channel_deletes_its_files(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    message = await sent(alice, general, [("a.txt", b"a"), ("b.txt", b"b")])
    url = message["attachments"][0]["url"]
    await alice.ok("DELETE", f"/channels/{general}/messages/{message['id']}")
    assert (await download(bob, url)).status_code == 404
    scratch = await alice.ok("POST", f"/guilds/{gid}/channels", json={"name": "scratch"})
    await sent(alice, scratch["id"], [("c.txt", b"c")])
    await alice.ok("DELETE", f"/channels/{scratch['id']}")
    async with relay.relay.db.read("test") as tx:
        assert (await tx.execute(select(func.count()).select_from(attachments))).scalar() == 0


@pytest.mark.no_rate_limits
async def test_search_has_file_and_image(relay: RunningRelay) -> None:
    alice, bob, gid, general = await community(relay)
    await bob.ok("POST", f"/channels/{general}/messages", json={"content": "just words"})
    await sent(alice, general, [("notes.txt", b"n")], "words and a file")
    await sent(alice, general, [("pic.png", png(4, 4))], "words and a picture")

    async def contents(**params: Any) -> list[str]:
        body = await bob.ok("GET", f"/guilds/{gid}/messages/search", params=params)
        return [hit[0]["content"] for hit in body["messages"]]

    assert await contents(has="file") == ["words and a picture", "words and a file"]
    assert await contents(has="image") == ["words and a picture"]
    hits = await bob.ok("GET", f"/guilds/{gid}/messages/search", params={"has": "image"})
    assert hits["messages"][0][0]["attachments"][0]["filename"] == "pic.png"
