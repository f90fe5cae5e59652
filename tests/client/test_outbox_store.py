"""The offline outbox on a real SQLCipher store: order, nonces, crash safety, flushing."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from nexus_client import Forbidden
from nexus_client.outbox import FlushResult, Outbox, PendingMessage, PermanentFailure
from nexus_client.store import KEEP_SENT, LocalStore, ScryptParams

KEY = bytes(range(32))


class Crash(BaseException):
    """The process dying mid-send: nothing after it runs (not an ``Exception``)."""


@dataclass
class FakeRelay:
    """Keeps one message per nonce and answers a repeat with the first, as the relay does."""

    by_nonce: dict[str, int] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)  # nonces, first delivery order
    attempts: list[str] = field(default_factory=list)
    next_id: int = 1_000

    def deliver(self, message: PendingMessage) -> int:
        self.attempts.append(message.nonce)
        if message.nonce not in self.by_nonce:
            self.next_id += 1
            self.by_nonce[message.nonce] = self.next_id
            self.delivered.append(message.nonce)
        return self.by_nonce[message.nonce]


def snapshot(src: Path, dest_dir: Path) -> Path:
    """What a crash leaves on disk: the files as they are now, the connection abandoned."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for file in sorted(src.parent.iterdir()):
        if file.name.startswith(src.name) and not file.name.endswith("-shm"):
            shutil.copyfile(file, dest_dir / file.name)
    return dest_dir / src.name


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    opened = LocalStore.open_with_key(tmp_path / "a.db", KEY)
    yield opened
    opened.close()


def test_enqueue_is_ordered_durable_and_nonced(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = LocalStore.open(path, passphrase="pw", kdf=ScryptParams(n=2**10))
    outbox = Outbox(store)
    queued = [outbox.enqueue(7, f"hello {i}", reply_to=99 if i == 1 else None) for i in range(5)]
    assert [m.local_id for m in queued] == sorted({m.local_id for m in queued})
    assert len({m.nonce for m in queued}) == 5
    assert all(0 < len(m.nonce) <= 25 for m in queued)
    assert queued[1].reply_to == 99
    assert {m.state for m in queued} == {"pending"}

    # No close: the copy is what a crash right now would leave.
    crashed = snapshot(path, tmp_path / "crash")
    store.close()
    with LocalStore.open(crashed, passphrase="pw") as reopened:
        assert Outbox(reopened).pending() == queued


def test_next_to_send_is_global_fifo(store: LocalStore) -> None:
    outbox = Outbox(store)
    a = outbox.enqueue(2, "a")
    b = outbox.enqueue(1, "b")
    assert outbox.next_to_send() == a
    assert outbox.mark_sent(a.local_id, 500)
    assert outbox.next_to_send() == b
    assert outbox.pending(channel_id=1) == [b]
    assert outbox.pending(channel_id=2) == []
    sent = outbox.get(a.local_id)
    assert sent is not None and sent.state == "sent" and sent.message_id == 500


async def test_flush_with_transient_failures_sends_each_once_in_order(store: LocalStore) -> None:
    outbox = Outbox(store)
    queued = [outbox.enqueue(1, f"m{i}") for i in range(4)]
    relay = FakeRelay()
    # m1's first try reaches the relay but the answer is lost; m2's first try never
    # leaves; each failure ends that flush.
    failures = {(queued[1].nonce, 1): "after", (queued[2].nonce, 1): "before"}
    tries: dict[str, int] = {}

    async def send(message: PendingMessage) -> int:
        tries[message.nonce] = tries.get(message.nonce, 0) + 1
        when = failures.get((message.nonce, tries[message.nonce]))
        if when == "before":
            raise ConnectionError("offline")
        message_id = relay.deliver(message)
        if when == "after":
            raise TimeoutError("answer lost")
        return message_id

    results: list[FlushResult] = []
    while True:
        result = await outbox.flush(send)
        results.append(result)
        if result.interrupted_by is None:
            break
    assert [(r.sent, r.remaining) for r in results] == [(1, 3), (1, 2), (2, 0)]
    assert isinstance(results[0].interrupted_by, TimeoutError)
    assert relay.delivered == [m.nonce for m in queued]
    assert outbox.pending() == []
    assert not outbox.has_pending()
    for m in queued:
        final = outbox.get(m.local_id)
        assert final is not None and final.message_id == relay.by_nonce[m.nonce]


async def test_permanent_failure_does_not_block_and_retry_keeps_the_nonce(
    store: LocalStore,
) -> None:
    outbox = Outbox(store)
    first, bad, forbidden, last = (outbox.enqueue(1, c) for c in ("a", "bad", "forbidden", "z"))
    relay = FakeRelay()
    refuse = {bad.nonce: PermanentFailure("Cannot send an empty message")}
    refuse[forbidden.nonce] = Forbidden(403, 50013, "Missing Permissions")

    async def send(message: PendingMessage) -> int:
        if message.nonce in refuse:
            raise refuse[message.nonce]
        return relay.deliver(message)

    result = await outbox.flush(send)
    assert (result.sent, result.failed, result.remaining) == (2, 2, 0)
    assert result.interrupted_by is None
    assert relay.delivered == [first.nonce, last.nonce]
    assert not outbox.has_pending()
    failed = outbox.pending()
    assert [(m.local_id, m.state) for m in failed] == [
        (bad.local_id, "failed"),
        (forbidden.local_id, "failed"),
    ]
    assert failed[0].error == "Cannot send an empty message"
    assert failed[1].error is not None and "403" in failed[1].error

    assert not outbox.retry(first.local_id)  # only failed ones
    assert outbox.retry(bad.local_id)
    retried = outbox.next_to_send()
    assert retried is not None and retried.nonce == bad.nonce and retried.error is None
    del refuse[bad.nonce]
    assert (await outbox.flush(send)).sent == 1
    assert relay.delivered[-1] == bad.nonce

    assert not outbox.discard(bad.local_id)  # sent: nothing to discard
    assert outbox.discard(forbidden.local_id)
    assert outbox.pending() == []
    assert outbox.get(forbidden.local_id) is None


async def test_crash_mid_send_resends_with_the_same_nonce(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = LocalStore.open_with_key(path, KEY)
    outbox = Outbox(store)
    a = outbox.enqueue(1, "a")
    b = outbox.enqueue(1, "b")
    relay = FakeRelay()
    crashed_dir = tmp_path / "crash"

    async def send_then_die(message: PendingMessage) -> int:
        if message.local_id == b.local_id:
            relay.deliver(message)  # reached the relay…
            snapshot(path, crashed_dir)  # …and the process died before the answer
            raise Crash
        return relay.deliver(message)

    with pytest.raises(Crash):
        await outbox.flush(send_then_die)
    store.close()

    with LocalStore.open_with_key(crashed_dir / "a.db", KEY) as reopened:
        outbox = Outbox(reopened)
        (waiting,) = outbox.pending()
        assert (waiting.local_id, waiting.nonce, waiting.state) == (b.local_id, b.nonce, "pending")

        async def send(message: PendingMessage) -> int:
            return relay.deliver(message)

        assert (await outbox.flush(send)).sent == 1
    assert relay.attempts == [a.nonce, b.nonce, b.nonce]
    assert relay.delivered == [a.nonce, b.nonce]


async def test_cancelled_flush_leaves_the_message_pending(store: LocalStore) -> None:
    outbox = Outbox(store)
    queued = outbox.enqueue(1, "slow")
    started = asyncio.Event()

    async def hang(message: PendingMessage) -> int:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("not reached")

    task = asyncio.create_task(outbox.flush(hang))
    await started.wait()
    assert outbox.pending()[0].state == "sending"
    assert not outbox.discard(queued.local_id)  # in flight: not discardable
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outbox.pending() == [queued]


async def test_sent_entries_are_pruned_to_the_newest(store: LocalStore) -> None:
    outbox = Outbox(store)
    queued = [outbox.enqueue(1, f"m{i}") for i in range(KEEP_SENT + 20)]
    relay = FakeRelay()

    async def send(message: PendingMessage) -> int:
        return relay.deliver(message)

    assert (await outbox.flush(send)).sent == len(queued)
    assert outbox.get(queued[19].local_id) is None
    kept = outbox.get(queued[20].local_id)
    assert kept is not None and kept.message_id == relay.by_nonce[queued[20].nonce]
    # Local ids keep growing after pruning.
    assert outbox.enqueue(1, "later").local_id > queued[-1].local_id


# -- the model -----------------------------------------------------------------------------

Outcome = str  # "ok", "offline" (before the relay), "lost" (after the relay), "refused"


@dataclass
class ModelMessage:
    local_id: int
    channel_id: int
    content: str
    nonce: str
    state: str  # "pending", "failed", "sent", "discarded"
    retried: bool = False
    message_id: int | None = None


@settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
class OutboxMachine(RuleBasedStateMachine):
    """Random enqueues, flushes with random failures, crashes, retries and discards,
    checked against a plain model."""

    @initialize()
    def open_store(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="nexus-outbox-"))
        self.generation = 0
        self.path = self.tmp / "0" / "a.db"
        self.store = LocalStore.open_with_key(self.path, KEY)
        self.outbox = Outbox(self.store)
        self.model: dict[int, ModelMessage] = {}
        self.relay = FakeRelay()

    def teardown(self) -> None:
        if not hasattr(self, "store"):
            return
        try:
            # Eventually: everything not discarded goes out, once.
            for m in self.model.values():
                if m.state == "failed":
                    assert self.outbox.retry(m.local_id)
                    m.state, m.retried = "pending", True
            self._flush([])
            wanted = [m for m in self.model.values() if m.state != "discarded"]
            assert all(m.state == "sent" for m in wanted)
            assert {m.nonce for m in wanted} <= set(self.relay.delivered)
            assert len(self.relay.delivered) == len(set(self.relay.delivered))
        finally:
            self.store.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _waiting(self) -> list[ModelMessage]:
        return sorted(
            (m for m in self.model.values() if m.state == "pending"), key=lambda m: m.local_id
        )

    def _flush(self, outcomes: list[Outcome]) -> FlushResult:
        plan = list(outcomes)

        async def send(message: PendingMessage) -> int:
            expected = self._waiting()[0]  # the oldest pending one, nothing else
            assert (message.local_id, message.nonce) == (expected.local_id, expected.nonce)
            assert (message.channel_id, message.content) == (expected.channel_id, expected.content)
            outcome = plan.pop(0) if plan else "ok"
            if outcome == "offline":
                raise ConnectionError("offline")
            if outcome == "refused":
                expected.state = "failed"
                raise PermanentFailure("refused")
            message_id = self.relay.deliver(message)
            if outcome == "lost":
                raise TimeoutError("answer lost")
            expected.state, expected.message_id = "sent", message_id
            return message_id

        before = {m.local_id: m.state for m in self.model.values()}
        result = asyncio.run(self.outbox.flush(send))
        after = {m.local_id: m.state for m in self.model.values()}
        changed = [i for i in after if after[i] != before[i]]
        assert result.sent == sum(after[i] == "sent" for i in changed)
        assert result.failed == sum(after[i] == "failed" for i in changed)
        assert result.remaining == len(self._waiting())
        assert (result.interrupted_by is None) == (result.remaining == 0)
        return result

    @rule(channel_id=st.integers(1, 3), content=st.text(min_size=1, max_size=20))
    def enqueue(self, channel_id: int, content: str) -> None:
        queued = self.outbox.enqueue(channel_id, content)
        assert all(queued.local_id > i for i in self.model)
        assert all(queued.nonce != m.nonce for m in self.model.values())
        self.model[queued.local_id] = ModelMessage(
            queued.local_id, channel_id, content, queued.nonce, "pending"
        )

    @rule(outcomes=st.lists(st.sampled_from(["ok", "offline", "lost", "refused"]), max_size=6))
    def flush(self, outcomes: list[Outcome]) -> None:
        self._flush(outcomes)

    @precondition(lambda self: bool(self._waiting()))
    @rule(delivered=st.booleans())
    def crash_mid_send(self, delivered: bool) -> None:
        self.generation += 1
        crashed = self.tmp / str(self.generation)

        async def send(message: PendingMessage) -> int:
            if delivered:
                self.relay.deliver(message)
            snapshot(self.path, crashed)
            raise Crash

        try:
            asyncio.run(self.outbox.flush(send))
        except Crash:
            pass
        else:
            raise AssertionError("the crash did not happen")
        self.store.close()  # too late to matter: the crash image is already taken
        self._reopen(crashed / "a.db")

    @rule()
    def restart(self) -> None:
        self.store.close()
        self._reopen(self.path)

    def _reopen(self, path: Path) -> None:
        self.path = path
        self.store = LocalStore.open_with_key(path, KEY)
        self.outbox = Outbox(self.store)

    @precondition(lambda self: any(m.state == "failed" for m in self.model.values()))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        failed = [m for m in self.model.values() if m.state == "failed"]
        chosen = data.draw(st.sampled_from(failed))
        assert self.outbox.retry(chosen.local_id)
        again = self.outbox.get(chosen.local_id)
        assert again is not None and again.nonce == chosen.nonce
        chosen.state, chosen.retried = "pending", True

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        chosen = data.draw(st.sampled_from(sorted(self.model.values(), key=lambda m: m.local_id)))
        removable = chosen.state in ("pending", "failed")
        assert self.outbox.discard(chosen.local_id) == removable
        if removable:
            chosen.state = "discarded"

    @invariant()
    def unsent_messages_match_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        expected = [
            (m.local_id, m.nonce, m.content, m.state)
            for m in sorted(self.model.values(), key=lambda m: m.local_id)
            if m.state in ("pending", "failed")
        ]
        actual = [(m.local_id, m.nonce, m.content, m.state) for m in self.outbox.pending()]
        assert actual == expected
        assert self.outbox.has_pending() == bool(self._waiting())

    @invariant()
    def delivered_once_and_in_order(self) -> None:
        if not hasattr(self, "store"):
            return
        delivered = self.relay.delivered
        assert len(delivered) == len(set(delivered))
        local_of = {m.nonce: m.local_id for m in self.model.values()}
        in_turn = [local_of[n] for n in delivered if not self._by_nonce(n).retried]
        assert in_turn == sorted(in_turn)
        for m in self.model.values():
            if m.state == "sent":
                assert m.message_id == self.relay.by_nonce[m.nonce]

    def _by_nonce(self, nonce: str) -> ModelMessage:
        return next(m for m in self.model.values() if m.nonce == nonce)


TestOutboxMachine = OutboxMachine.TestCase
