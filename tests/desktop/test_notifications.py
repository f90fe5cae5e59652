"""Per-channel notification levels, mutes and keywords against a real relay, and their
persistence in the account's encrypted store."""

from __future__ import annotations

from pathlib import Path

from nexus_client import Client
from nexus_desktop.notifications import (
    MUTED_FOREVER,
    NotificationSettings,
    Notifier,
    notification_settings_for,
    plain_preview,
)
from nexus_desktop.session import AppSession
from nexus_protocol.models import Message
from tests.waiting import until

PASSWORD = "correct horse battery"
PASSPHRASE = "test passphrase"


async def test_levels_mute_keywords_and_persistence(relay_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "app"
    session = AppSession(data_dir)
    account = await session.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase=PASSPHRASE
    )
    alice_id = account.user.id if account.user else 0
    bob = Client(relay_url)
    await bob.register("bob", PASSWORD)
    await bob.start()
    try:
        guild = await bob.create_guild("Book club")
        await until(lambda: guild.id in bob.cache.guilds)
        general = next(c for c in bob.cache.channels_of(guild.id) if c.name == "general")
        session.run(account.client.join((await bob.create_invite(general.id)).code))
        await until(lambda: session.channel(general.id) is not None)

        settings = notification_settings_for(session)
        notifier = Notifier(session, settings)
        seen: list[Message] = []
        session.message_created.connect(seen.append)

        async def bob_says(text: str) -> None:
            before = len(seen)
            await bob.post_message(general.id, text)
            await until(lambda: len(seen) > before)

        # A small community notifies for every message by default.
        assert settings.level(general.id) == "all"
        await bob_says("hello **everyone**")
        assert notifier.recent[-1] == (
            general.id,
            "#general — Book club",
            "bob: hello **everyone**",
        )

        # "Only @mentions": a plain line stays quiet, a mention gets through.
        settings.set_level(general.id, "mentions")
        notifier.recent.clear()
        await bob_says("just chatting")
        assert list(notifier.recent) == []
        await bob_says(f"<@{alice_id}> look at this")
        assert [body for _, _, body in notifier.recent] == ["bob: @alice look at this"]

        # A keyword counts like a mention, as a whole word, in any case.
        settings.set_keywords(account, ["Pizza", " "])
        assert settings.keywords(account) == ["Pizza"]
        notifier.recent.clear()
        await bob_says("pizzas are not a keyword")
        assert list(notifier.recent) == []
        await bob_says("who wants PIZZA tonight?")
        assert len(notifier.recent) == 1

        # Muted: not even a mention; unmuted again, mentions come back.
        settings.mute(general.id, 15 * 60)
        assert settings.is_muted(general.id)
        notifier.recent.clear()
        await bob_says(f"<@{alice_id}> are you there?")
        assert list(notifier.recent) == []
        settings.unmute(general.id)
        await bob_says(f"<@{alice_id}> now?")
        assert len(notifier.recent) == 1

        # "Nothing" means nothing; my own messages never notify me.
        settings.set_level(general.id, "nothing")
        notifier.recent.clear()
        await bob_says(f"<@{alice_id}> pizza!")
        await account.client.post_message(general.id, "my own words")
        await until(lambda: seen[-1].author.id == alice_id)
        assert list(notifier.recent) == []

        settings.set_level(general.id, "mentions")
        settings.mute(general.id, None)
        assert settings.muted_until(general.id) == MUTED_FOREVER
    finally:
        await session.close()

    # A new session on the same data dir and passphrase finds the same settings.
    reopened = AppSession(data_dir)
    try:
        account = await reopened.add_account(relay_url, "alice", PASSWORD, passphrase=PASSPHRASE)
        await until(lambda: reopened.channel(general.id) is not None)
        settings = NotificationSettings(reopened)
        assert settings.channel_level(general.id) == "mentions"
        assert settings.muted_until(general.id) == MUTED_FOREVER
        assert settings.keywords(account) == ["Pizza"]
    finally:
        await bob.close()
        await reopened.close()


def test_preview_is_plain_and_short() -> None:
    message = Message.model_validate(
        {
            "id": 1,
            "channel_id": 2,
            "author": {"id": 3, "username": "bob"},
            "content": "<b>hi</b>\n\n<@4> " + "x" * 500,
            "timestamp": "2026-01-01T00:00:00Z",
            "mentions": [{"id": 4, "username": "alice", "global_name": "Alice"}],
        }
    )
    preview = plain_preview(message)
    assert preview.startswith("<b>hi</b> @Alice xxx")  # shown as text, never as markup
    assert len(preview) == 200 and preview.endswith("…")
