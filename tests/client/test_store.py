"""The encrypted local store, on real SQLCipher files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from jaraco.classes import properties
from keyring.backend import KeyringBackend

from nexus_client import NoKeyAvailable, StoreError, StoreLocked
from nexus_client.outbox import Outbox
from nexus_client.store import (
    MESSAGES_PER_CHANNEL,
    SCHEMA_VERSION,
    LocalStore,
    ReadState,
    ScryptParams,
)
from nexus_client.store._database import Database
from nexus_client.store._migrations import migrate, schema_version

# Cheap enough for tests; real stores use the default cost.
FAST_KDF = ScryptParams(n=2**10)
SECRET = "correct horse battery staple"


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in (this machine has none), installed only by the fixture."""

    @properties.classproperty
    def priority(cls) -> float:
        # Every KeyringBackend subclass joins keyring's automatic choice; a priority
        # that raises keeps this one out of it, for this test session and all others.
        raise RuntimeError("only for tests, through keyring.set_keyring")

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def open_store(path: Path, passphrase: str = SECRET) -> LocalStore:
    return LocalStore.open(path, passphrase=passphrase, kdf=FAST_KDF)


def store_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name))


def fingerprint(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in store_files(path)}


def message(message_id: int, content: str = "", channel_id: int = 1) -> dict[str, object]:
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "content": content or f"m{message_id}",
    }


def test_nothing_readable_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "relay.example" / "42.db"
    secrets_written = [
        "zebra-quokka-message-7731",
        "edited-platypus-8812",
        "guild-narwhal-5521",
        "channel-axolotl-9904",
        "session-okapi-3310",
        "outbox-pangolin-6647",
    ]
    store = open_store(path)
    store.save_messages(1, [message(10, secrets_written[0]), message(11, "plain")])
    store.apply_message_update({"id": "11", "content": secrets_written[1]})
    store.save_guilds([{"id": "5", "name": secrets_written[2]}])
    store.save_channels(5, [{"id": "1", "name": secrets_written[3]}])
    store.set_meta("session_id", secrets_written[4])
    Outbox(store).enqueue(1, secrets_written[5])

    def raw() -> bytes:
        files = store_files(path)
        assert path in files
        return b"".join(p.read_bytes() for p in files)

    while_open = raw()
    assert path.with_name("42.db-wal") in store_files(path)  # WAL really in use
    store.close()
    after_close = raw()
    for blob in (while_open, after_close):
        assert not blob.startswith(b"SQLite format 3")
        for text in secrets_written:
            assert text.encode() not in blob
            assert text.encode("utf-16-le") not in blob
    assert not path.read_bytes().startswith(b"SQLite format 3")


def test_wrong_passphrase_is_locked_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with open_store(path) as store:
        store.save_messages(1, [message(1, "keep me")])
    before = fingerprint(path)

    with pytest.raises(StoreLocked, match="encrypted with another key"):
        open_store(path, "not the passphrase")

    assert fingerprint(path) == before
    with open_store(path) as store:
        assert [m["content"] for m in store.messages(1)] == ["keep me"]


def test_wrong_raw_key_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    LocalStore.open_with_key(path, b"\x01" * 32).close()
    before = fingerprint(path)
    with pytest.raises(StoreLocked):
        LocalStore.open_with_key(path, b"\x02" * 32)
    assert fingerprint(path) == before


def test_plain_sqlite_file_is_not_taken_over(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "plain.db"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (x)")
    plain.commit()
    plain.close()
    before = fingerprint(path)
    with pytest.raises(StoreLocked):
        open_store(path)
    assert fingerprint(path) == before


def test_no_keyring_and_no_passphrase(tmp_path: Path, no_keyring: None) -> None:
    path = tmp_path / "a.db"
    with pytest.raises(NoKeyAvailable, match="pass a passphrase"):
        LocalStore.open(path)
    assert not path.exists()


def test_default_keyring_of_this_machine_has_no_backend(tmp_path: Path) -> None:
    if not isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring):
        pytest.skip("this machine has an OS keyring")
    with pytest.raises(NoKeyAvailable):
        LocalStore.open(tmp_path / "a.db")


def test_keyring_key_is_created_once_and_reused(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    path = tmp_path / "a.db"
    with LocalStore.open(path, keyring_username="relay.example/42") as store:
        store.set_meta("k", "v")
    (entry,) = memory_keyring.entries.items()
    assert entry[0] == ("nexus", "relay.example/42")
    assert len(bytes.fromhex(entry[1])) == 32
    with LocalStore.open(path, keyring_username="relay.example/42") as store:
        assert store.get_meta("k") == "v"
    assert len(memory_keyring.entries) == 1


def test_keyring_without_entry_for_existing_store_is_locked(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    path = tmp_path / "a.db"
    open_store(path).close()  # a passphrase store
    before = fingerprint(path)
    with pytest.raises(StoreLocked, match="no key"):
        LocalStore.open(path)
    assert memory_keyring.entries == {}  # no key invented for a store that exists
    assert fingerprint(path) == before


def test_passphrase_on_keyring_store_is_locked(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    path = tmp_path / "a.db"
    LocalStore.open(path).close()
    with pytest.raises(StoreLocked, match="not created with a passphrase"):
        open_store(path)
    assert not path.with_name("a.db.salt").exists()


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalStore.open(tmp_path / "a.db", passphrase="")


def test_salt_file_keeps_the_cost_it_was_made_with(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    open_store(path).close()
    # Opening with a different default cost still derives the same key.
    with LocalStore.open(path, passphrase=SECRET, kdf=ScryptParams(n=2**11)) as store:
        assert store.get_meta("missing") is None


def test_corrupt_salt_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    open_store(path).close()
    path.with_name("a.db.salt").write_text("{not json")
    with pytest.raises(StoreError, match="salt file"):
        open_store(path)


def test_migrations_run_once_and_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with open_store(path) as store:
        store.set_meta("gateway_session", "abc")
        assert schema_version(store._db) == SCHEMA_VERSION
    with open_store(path) as store:
        assert migrate(store._db) == 0
        assert store.get_meta("gateway_session") == "abc"


def test_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    key = b"\x05" * 32
    database = Database.open(path, key)
    database.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    database.close()
    with pytest.raises(StoreError, match="newer"):
        LocalStore.open_with_key(path, key)


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with open_store(path) as store:
        store.set_meta("a", "1")
        with pytest.raises(RuntimeError), store._db.transaction():
            store._db.execute("UPDATE meta SET value = '2' WHERE key = 'a'")
            store._db.execute("INSERT INTO meta (key, value) VALUES ('b', '3')")
            raise RuntimeError("boom")
        assert store.get_meta("a") == "1"
        assert store.get_meta("b") is None


def test_sql_errors_become_store_errors(tmp_path: Path) -> None:
    with open_store(tmp_path / "a.db") as store, pytest.raises(StoreError):
        store._db.execute("SELECT * FROM no_such_table")


def test_message_cache_keeps_the_newest_per_channel(tmp_path: Path) -> None:
    with open_store(tmp_path / "a.db") as store:
        store.save_messages(1, [message(i) for i in range(1, 401)])
        store.save_messages(1, [message(i) for i in range(401, 701)])
        store.save_messages(2, [message(i, channel_id=2) for i in range(10_001, 10_011)])
        ids = [int(m["id"]) for m in store.messages(1, limit=1000)]
        assert ids == list(range(700, 200, -1))
        assert len(ids) == MESSAGES_PER_CHANNEL
        assert len(store.messages(2, limit=1000)) == 10  # other channels untouched
        # An old message arriving late is trimmed away at once.
        store.save_messages(1, [message(5)])
        assert min(int(m["id"]) for m in store.messages(1, limit=1000)) == 201


def test_messages_paging_update_and_delete(tmp_path: Path) -> None:
    with open_store(tmp_path / "a.db") as store:
        store.save_messages(1, [message(i) for i in range(1, 101)])
        assert [m["id"] for m in store.messages(1, limit=3)] == ["100", "99", "98"]
        assert [m["id"] for m in store.messages(1, limit=2, before=50)] == ["49", "48"]
        assert store.messages(3) == []

        # Upsert by id replaces the whole object.
        store.save_messages(1, [{"id": "100", "content": "new", "pinned": True}])
        assert store.messages(1, limit=1) == [{"id": "100", "content": "new", "pinned": True}]

        # A partial update merges.
        assert store.apply_message_update(
            {"id": "100", "content": "edited", "edited_timestamp": "2026-11-26T00:00:00+00:00"}
        )
        assert store.messages(1, limit=1)[0] == {
            "id": "100",
            "content": "edited",
            "pinned": True,
            "edited_timestamp": "2026-11-26T00:00:00+00:00",
        }
        assert not store.apply_message_update({"id": "999999", "content": "x"})

        assert store.delete_messages(1, ["100", 99, 12345]) == 2
        assert store.messages(1, limit=1)[0]["id"] == "98"
        assert store.delete_messages(2, [98]) == 0  # wrong channel


def test_bad_ids_are_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "a.db") as store:
        for bad in ({"content": "no id"}, {"id": "abc"}, {"id": True}, {"id": -1}):
            with pytest.raises(ValueError):
                store.save_messages(1, [bad])


def test_guilds_and_channels_are_replaced_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with open_store(path) as store:
        store.save_guilds([{"id": "2", "name": "b"}, {"id": "1", "name": "a"}])
        store.save_guilds([{"id": "3", "name": "c"}, {"id": "2", "name": "b2"}])
        store.save_channels(3, [{"id": "30", "name": "general"}, {"id": "31", "name": "dev"}])
        store.save_channels(2, [{"id": "20", "name": "lobby"}])
        store.save_channels(None, [{"id": "90", "type": 1}])
        store.save_channels(3, [{"id": "31", "name": "dev"}, {"id": "32", "name": "ops"}])
    with open_store(path) as store:
        assert [g["name"] for g in store.guilds()] == ["c", "b2"]
        assert [c["name"] for c in store.channels(3)] == ["dev", "ops"]
        assert [c["name"] for c in store.channels(2)] == ["lobby"]
        assert store.channels(None) == [{"id": "90", "type": 1}]
        assert store.channels(4) == []


def test_read_states_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with open_store(path) as store:
        store.save_read_state(1, 100, 2)
        store.save_read_state(1, 120, 0)
        store.save_read_state(2, None, 5)
        store.set_meta("session_id", "s1")
        store.set_meta("seq", "10")
        store.set_meta("seq", None)
    with open_store(path) as store:
        assert store.read_states() == {
            1: ReadState(channel_id=1, last_message_id=120, mention_count=0),
            2: ReadState(channel_id=2, last_message_id=None, mention_count=5),
        }
        assert store.get_meta("session_id") == "s1"
        assert store.get_meta("seq") is None
        assert store.get_meta("seq", "0") == "0"
