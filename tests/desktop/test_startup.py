"""Start-up: the store key is derived on a worker thread while the rest of the start
goes on, saved accounts open from their stores, and the connection waits for the
window's first paint."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from nexus_client import StoreLocked
from nexus_client.store import LocalStore, ScryptParams
from nexus_client.store._keys import passphrase_key
from nexus_desktop.app import parse_args
from nexus_desktop.qt import QLabel
from nexus_desktop.session import AppSession
from nexus_desktop.startup import Startup, after_first_paint
from nexus_desktop.store_keys import StoreKeyDerivation, derive_saved_keys
from tests.waiting import until

PASSWORD = "correct horse battery"
CHEAP = ScryptParams(n=2**10)


def test_a_key_derived_ahead_opens_its_store_and_only_that(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    LocalStore.open(path, passphrase="right", kdf=CHEAP).close()
    key = StoreKeyDerivation(path, "right").key()
    # The same key as the SDK's own derivation: the salt file is read the same way.
    assert key == passphrase_key(path, "right", db_exists=True, params=CHEAP)
    LocalStore.open_with_key(path, key).close()
    wrong = StoreKeyDerivation(path, "wrong").key()
    assert wrong is not None and wrong != key
    with pytest.raises(StoreLocked):
        LocalStore.open_with_key(path, wrong)
    # No store, or a store keyed another way (no salt file): nothing is derived, and
    # the usual opening path says what is wrong.
    assert StoreKeyDerivation(tmp_path / "missing.db", "right").key() is None
    raw = tmp_path / "raw.db"
    LocalStore.open_with_key(raw, secrets.token_bytes(32)).close()
    assert StoreKeyDerivation(raw, "right").key() is None
    # A salt file in a format this side does not know: no key, never a wrong guess.
    (tmp_path / "a.db.salt").write_text('{"format": "nexus-store-salt", "version": 2}')
    assert StoreKeyDerivation(path, "right").key() is None


async def test_saved_accounts_open_first_and_connect_after_the_first_paint(
    relay_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    first = AppSession(data_dir)
    account = await first.add_account(
        relay_url, "alice", PASSWORD, register=True, passphrase="pass phrase"
    )
    guild = await account.client.create_guild("Kept")
    await until(lambda: first.guild(guild.id))
    first.save_account_list()
    await first.close()

    session = AppSession(data_dir)
    window = QLabel("Nexus")
    try:
        derivations = derive_saved_keys(data_dir, "pass phrase")
        assert len(derivations) == 1
        args = parse_args(["--data", str(data_dir)])
        startup = Startup(session, args, "pass phrase", derivations)
        assert await startup.run()
        # Shown from the store, not yet connecting: that waits for the window.
        assert [g.name for _, g in session.all_guilds()] == ["Kept"]
        restored = session.accounts[0]
        assert startup.to_connect == [restored]
        await asyncio.sleep(0.2)
        assert not restored.client.online

        after_first_paint(window, startup.connect_restored)
        window.show()
        await until(lambda: restored.client.online)
        assert startup.to_connect == []
    finally:
        window.close()
        await session.close()


async def test_a_wrong_passphrase_given_ahead_restores_nothing_silently(
    relay_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    first = AppSession(data_dir)
    await first.add_account(relay_url, "alice", PASSWORD, register=True, passphrase="right")
    first.save_account_list()
    await first.close()
    session = AppSession(data_dir)
    try:
        startup = Startup(session, parse_args([]), "wrong", derive_saved_keys(data_dir, "wrong"))
        entry = session.saved_accounts()[0]
        # The derived (wrong) key does not open the store, nor does the SDK's own way:
        # the usual path (asking for the passphrase) takes over.
        assert not startup._restore_with_given_passphrase(entry)
        assert session.accounts == []
    finally:
        await session.close()
