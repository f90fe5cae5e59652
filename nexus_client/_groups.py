"""End-to-end encrypted group DMs and encrypted guild channels over the relay: signed
membership changes, sharing Megolm session keys over the pairwise sessions, and turning
incoming Megolm messages into ``group_message`` / ``undecryptable`` events. Replies,
edits, deletions and reactions travel inside the ciphertext; the archive
(``e2ee.PlaintextArchive``) applies each to its target. The cryptography is in
``e2ee`` (``GroupSessions``); see docs/e2ee.md.

Who gets a session key: in a group DM, the devices of the members that the **signed
membership log** says are in it (checked here, whatever the relay claims; an add that
does not verify adds nobody); in an encrypted channel, the devices the relay lists as
able to view it. A session is used only with the exact device set it was shared with,
for at most 100 messages: anything else starts a new one.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nexus_protocol.e2ee import (
    MembershipOp,
    b64decode,
    b64encode,
    membership_statement,
    parse_membership_statement,
)

from ._dm import DirectMessages
from ._events import EventDispatcher
from ._exceptions import NexusError
from ._http import HTTPClient
from .e2ee import (
    DecryptedMessage,
    E2EEError,
    GroupMessage,
    Undecryptable,
    UndecryptableMessage,
    UndecryptableReason,
    delete_payload,
    edit_payload,
    parse_payload,
    reaction_payload,
    text_payload,
)
from .store import LocalStore

if TYPE_CHECKING:  # vodozemac loads when a group session is first needed
    from .e2ee import Decrypted, GroupSessions

__all__ = ["GroupMessage", "GroupMessages", "Membership"]

DM = 1
GROUP_DM = 3


@dataclass(frozen=True, slots=True)
class Membership:
    """A group DM's membership as its signed log says."""

    owner_id: int | None
    members: frozenset[int]
    rejected: int  # statements that did not verify (and so added nobody)


class GroupMessages:
    def __init__(
        self, http: HTTPClient, store: LocalStore, events: EventDispatcher, dms: DirectMessages
    ) -> None:
        self._http = http
        self._store = store
        self._events = events
        self._dms = dms
        self._sessions: GroupSessions | None = None
        self._kinds: dict[int, bool] = {}  # channel id -> is a group DM
        self._pairwise: set[int] = set()  # one-to-one DMs met by ``uses_megolm``
        self._members: dict[int, Membership] = {}

    def sessions(self) -> GroupSessions:
        device = self._dms.need_device()
        if self._sessions is None or self._sessions.device_id != device.device_id:
            from .e2ee import GroupSessions

            self._sessions = GroupSessions(
                self._store.e2ee, device.user_id, device.device_id, device.identity
            )
        return self._sessions

    # -- signed membership ---------------------------------------------------------------

    def _signed(
        self, op: MembershipOp, channel_id: int | None, targets: list[int]
    ) -> dict[str, str]:
        device = self._dms.need_device()
        statement = membership_statement(
            op=op,
            channel_id=channel_id,
            actor_id=device.user_id,
            device_id=device.device_id,
            targets=targets,
            nonce=secrets.token_hex(16),
        )
        signature = device.identity.sign(statement.encode())
        return {
            "device_id": device.device_id,
            "statement": statement,
            "signature": b64encode(signature),
        }

    async def create_group_dm(self, user_ids: list[int]) -> int:
        me = self._dms.need_device().user_id
        members = sorted({me, *user_ids})
        data = await self._http.request(
            "POST",
            "/users/@me/channels",
            json={
                "recipients": [str(u) for u in members if u != me],
                "membership": self._signed(MembershipOp.CREATE, None, members),
            },
        )
        channel_id = int(data["id"])
        self._kinds[channel_id] = True
        return channel_id

    async def add_recipient(self, channel_id: int, user_id: int) -> None:
        await self._http.request(
            "PUT",
            f"/channels/{channel_id}/recipients/{user_id}",
            json={"membership": self._signed(MembershipOp.ADD, channel_id, [user_id])},
        )
        self._changed(channel_id)

    async def remove_recipient(self, channel_id: int, user_id: int) -> None:
        await self._http.request(
            "DELETE",
            f"/channels/{channel_id}/recipients/{user_id}",
            json={"membership": self._signed(MembershipOp.REMOVE, channel_id, [user_id])},
        )
        self._changed(channel_id)

    def _changed(self, channel_id: int) -> None:
        self._members.pop(channel_id, None)
        if self._dms.device is not None:
            self.sessions().discard(channel_id)

    async def _identity_key(self, user_id: int, device_id: str) -> bytes | None:
        device = self._dms.need_device()
        if (user_id, device_id) == (device.user_id, device.device_id):
            return device.identity_key
        known = self._store.e2ee.peer_keys(user_id).get(device_id)
        if known is not None:
            return known
        try:
            return (await self._dms.refresh_devices(user_id)).get(device_id)
        except NexusError:
            return None

    async def verify_entry(self, channel_id: int, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The statement's fields if it is canonical, names ``channel_id`` (or is the
        creation) and its signature verifies under the named device's identity key."""
        try:
            fields = parse_membership_statement(str(entry["statement"]))
            signature = b64decode(str(entry["signature"]))
        except (KeyError, ValueError):
            return None
        if fields["actor_id"] != int(entry["user_id"]) or fields["device_id"] != entry["device_id"]:
            return None
        if fields["op"] is not MembershipOp.CREATE and fields["channel_id"] != channel_id:
            return None
        key = await self._identity_key(fields["actor_id"], fields["device_id"])
        if key is None:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                signature, str(entry["statement"]).encode()
            )
        except (InvalidSignature, ValueError):
            return None
        return fields

    async def membership(self, channel_id: int, *, fresh: bool = False) -> Membership:
        """Replay the signed log: a creation signed by its creator, then adds by members,
        removals by the owner or by the member leaving. Unverifiable adds add nobody;
        removals always apply (removing is never unsafe)."""
        if not fresh and channel_id in self._members:
            return self._members[channel_id]
        log = await self._http.request("GET", f"/channels/{channel_id}/membership")
        owner: int | None = None
        members: set[int] = set()
        rejected = 0
        for index, entry in enumerate(log):
            fields = await self.verify_entry(channel_id, entry)
            if index == 0:
                if (
                    fields is None
                    or fields["op"] is not MembershipOp.CREATE
                    or fields["actor_id"] not in fields["targets"]
                ):
                    raise E2EEError("the group DM's creation statement does not verify")
                owner = fields["actor_id"]
                members = set(fields["targets"])
                continue
            try:
                claimed = parse_membership_statement(str(entry["statement"]))
            except (KeyError, ValueError):
                rejected += 1
                continue
            target = claimed["targets"][0] if len(claimed["targets"]) == 1 else None
            if claimed["op"] is MembershipOp.REMOVE and target is not None:
                if fields is None:
                    rejected += 1
                members.discard(target)
                if target == owner:
                    owner = min(members) if members else None
            elif (
                claimed["op"] is MembershipOp.ADD
                and fields is not None
                and target is not None
                and fields["actor_id"] in members
                and len(members) < 10
            ):
                members.add(target)
            else:
                rejected += 1
        found = Membership(owner, frozenset(members), rejected)
        self._members[channel_id] = found
        return found

    async def on_membership_event(self, event: str, data: dict[str, Any]) -> None:
        """CHANNEL_RECIPIENT_ADD / _REMOVE: accepted only if the statement verifies; then
        the next message starts a new session (shared with the new member set)."""
        if self._dms.device is None:
            return
        channel_id = int(data["channel_id"])
        user_id = int(data["user"]["id"])
        fields = await self.verify_entry(channel_id, data.get("membership") or {})
        expected = MembershipOp.ADD if event == "CHANNEL_RECIPIENT_ADD" else MembershipOp.REMOVE
        if fields is None or fields["op"] is not expected or fields["targets"] != [user_id]:
            self._events.dispatch("membership_rejected", channel_id, user_id)
            # A removal is applied anyway (never unsafe); an add is not.
            if expected is MembershipOp.REMOVE:
                self._changed(channel_id)
            return
        device = self._dms.device
        own = (fields["actor_id"], fields["device_id"]) == (device.user_id, device.device_id)
        # Our own change was applied when we made it (add/remove_recipient); its echo
        # must not throw away the session the next message already rotated to.
        if not own:
            self._changed(channel_id)
        name = "group_member_add" if expected is MembershipOp.ADD else "group_member_remove"
        self._events.dispatch(name, channel_id, user_id)

    # -- sending -------------------------------------------------------------------------

    async def _is_group_dm(self, channel_id: int) -> bool:
        known = self._kinds.get(channel_id)
        if known is None:
            data = await self._http.request("GET", f"/channels/{channel_id}")
            if int(data["type"]) == GROUP_DM:
                known = True
            elif data.get("e2ee"):
                known = False
            else:
                raise E2EEError("this channel is not end-to-end encrypted")
            self._kinds[channel_id] = known
        return known

    async def _targets(self, channel_id: int) -> list[tuple[int, str, bytes]]:
        """Every device that should hold this device's session key, this one excluded."""
        device = self._dms.need_device()
        listed = await self._http.request("GET", f"/channels/{channel_id}/devices")
        found = [
            (int(d["user_id"]), str(d["device_id"]), b64decode(str(d["identity_key"])))
            for d in listed
        ]
        if await self._is_group_dm(channel_id):
            members = await self.membership(channel_id)
            if {u for u, _, _ in found} - members.members:
                members = await self.membership(channel_id, fresh=True)
            found = [t for t in found if t[0] in members.members]
        by_user: dict[int, dict[str, bytes]] = defaultdict(dict)
        for user_id, device_id, key in found:
            by_user[user_id][device_id] = key
        for user_id, keys in by_user.items():
            self._dms.note_devices(user_id, keys)  # the listing is each user's complete set
        return [t for t in found if (t[0], t[1]) != (device.user_id, device.device_id)]

    async def send(self, channel_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``payload`` once with this device's Megolm session for the channel
        (a new one when needed, its key shared to every target device in the same
        message) and post it; returns the relay's message object."""
        device = self._dms.need_device()
        sessions = self.sessions()
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        async with self._dms.lock:
            targets = await self._targets(channel_id)
            names = frozenset(f"{u}:{d}" for u, d, _ in targets)
            envelopes: list[dict[str, str]] = []
            if sessions.needs_rotation(channel_id, names):
                session_id, key = sessions.start(channel_id)
                share = json.dumps(
                    {
                        "kind": "megolm_key",
                        "channel_id": str(channel_id),
                        "session_id": session_id,
                        "session_key": key,
                    },
                    separators=(",", ":"),
                ).encode()
                for user_id, device_id, identity_key in targets:
                    await self._dms.ensure_session(user_id, device_id, identity_key)
                    is_prekey, blob = await device.encrypt(user_id, device_id, share)
                    envelopes.append(
                        {
                            "user_id": str(user_id),
                            "device_id": device_id,
                            "type": "prekey" if is_prekey else "message",
                            "ciphertext": b64encode(blob),
                        }
                    )
            session_id, index, wire = sessions.encrypt(channel_id, body)
            request: dict[str, Any] = {"nonce": secrets.token_hex(12), "megolm": b64encode(wire)}
            if envelopes:
                request["envelopes"] = envelopes
            data: dict[str, Any] = await self._http.request(
                "POST",
                f"/channels/{channel_id}/messages",
                json=request,
                bucket="/channels/{channel_id}/messages",
            )
            # Only once the relay took the key shares is the session "shared".
            sessions.mark_shared(channel_id, session_id, names)
            # Before the lock is released, so the echo of this message finds it archived.
            self._dms.archive.keep(
                data, payload, sender_device=device.device_id, session=(session_id, index)
            )
        return data

    async def send_text(self, channel_id: int, text: str, reply_to: int | None) -> int:
        """Post ``text``, answering message ``reply_to`` if given; returns its id. The
        reply target travels inside the ciphertext: the relay cannot link the two."""
        return int((await self.send(channel_id, text_payload(text, reply_to)))["id"])

    async def edit(self, channel_id: int, message_id: int, text: str) -> int:
        """Post an edit of this user's message ``message_id`` (decrypted or sent by this
        device, in ``channel_id``): an encrypted message of its own, so the relay learns
        neither that it is an edit nor of what. Returns the edit's message id."""
        me = self._dms.need_device().user_id
        payload = edit_payload(self._dms.archive, me, channel_id, message_id, text)
        return int((await self.send(channel_id, payload))["id"])

    async def delete(self, channel_id: int, message_id: int) -> int:
        """Post the deletion of this user's message ``message_id`` (as for ``edit``)."""
        me = self._dms.need_device().user_id
        payload = delete_payload(self._dms.archive, me, channel_id, message_id)
        return int((await self.send(channel_id, payload))["id"])

    async def react(self, channel_id: int, message_id: int, emoji: str, add: bool) -> int:
        """Post this user's reaction ``emoji`` to a message (``add`` False takes it back)."""
        payload = reaction_payload(self._dms.archive, channel_id, message_id, emoji, add)
        return int((await self.send(channel_id, payload))["id"])

    async def uses_megolm(self, channel_id: int) -> bool:
        """Whether an encrypted channel is a group (a group DM or an encrypted community
        channel: Megolm) rather than a one-to-one DM (pairwise sessions)."""
        if channel_id in self._kinds:
            return True
        if channel_id in self._pairwise:
            return False
        data = await self._http.request("GET", f"/channels/{channel_id}")
        if int(data["type"]) == DM:
            self._pairwise.add(channel_id)
            return False
        if int(data["type"]) == GROUP_DM or data.get("e2ee"):
            self._kinds[channel_id] = int(data["type"]) == GROUP_DM
            return True
        raise E2EEError("channel_id: this channel is not end-to-end encrypted")

    # -- receiving -----------------------------------------------------------------------

    def decrypted(self, message_id: int) -> DecryptedMessage | None:
        return self._dms.archive.get(message_id)

    def _failed(self, data: dict[str, Any], reason: str, detail: str) -> UndecryptableMessage:
        self._dms.archive.keep_failure(data, reason, detail)
        return UndecryptableMessage(
            int(data["channel_id"]), int(data["id"]), int(data["author"]["id"]), reason, detail
        )

    async def receive(self, data: dict[str, Any]) -> DecryptedMessage | None:
        """Handle a MESSAGE_CREATE that carries ``megolm``: raises ``group_message`` or
        ``undecryptable``. None for this device's own messages, and for what is not
        shown: an edit, deletion or reaction that does not count (see
        ``PlaintextArchive.applies``) and a kind this version does not know (the archive
        logged either)."""
        outcome = await self.decrypt_message(data)
        if outcome is None:
            return None
        message, fresh = outcome
        if fresh and isinstance(message, GroupMessage) and not self._dms.archive.applies(message):
            return None
        return self._dms.deliver(outcome)

    async def decrypt_message(self, data: dict[str, Any]) -> tuple[DecryptedMessage, bool] | None:
        """A relay message carrying ``megolm``, decrypted at most once: first a session
        key addressed to this device, if any, then the message. ``(outcome, True)`` the
        first time (archived), ``(archived, False)`` after that."""
        device = self._dms.device
        if device is None or not data.get("megolm"):
            return None
        sessions = self.sessions()
        channel_id = int(data["channel_id"])
        message_id = int(data["id"])
        author_id = int(data["author"]["id"])
        async with self._dms.lock:
            archived = self._dms.archive.get(message_id)
            if archived is not None:
                return archived, False
            try:
                wire = b64decode(str(data["megolm"]))
            except ValueError as exc:
                return self._failed(data, "malformed", str(exc)), True
            share_problem = await self._accept_key_share(data, channel_id, author_id)
            try:
                with self._store.e2ee.transaction():
                    # The replay filter and the archive change together.
                    decrypted = sessions.decrypt(channel_id, author_id, wire)
                    payload = parse_payload(decrypted.plaintext)
                    self._dms.archive.keep(
                        data,
                        payload,
                        sender_device=decrypted.sender_device,
                        session=(decrypted.session_id, decrypted.message_index),
                    )
            except Undecryptable as exc:
                if author_id == device.user_id and exc.reason is UndecryptableReason.REPLAY:
                    return None
                detail = exc.detail + share_problem
                return self._failed(data, exc.reason.value, detail), True
            except ValueError as exc:
                return self._failed(data, "malformed", str(exc)), True
        # Read back from the archive: a text with the edits that arrived before it.
        message = self._dms.archive.get(message_id)
        assert message is not None
        # This device's own message (its echo arrived first): archived, no event.
        own = (author_id, decrypted.sender_device) == (device.user_id, device.device_id)
        return message, not own

    async def _accept_key_share(self, data: dict[str, Any], channel_id: int, author_id: int) -> str:
        """Decrypt the session key addressed to this device, if any, and keep it in the
        same transaction as the pairwise session change. Returns what went wrong ("" if
        nothing), to explain a Megolm message that then does not decrypt."""
        device = self._dms.need_device()
        envelope = self._dms.envelope_for_me(data.get("envelopes"))
        if envelope is None:
            return ""
        sessions = self.sessions()
        known = self._store.e2ee.peer_keys(author_id)
        problem: list[str] = []

        def keep(shared: Decrypted) -> None:
            try:
                key = json.loads(shared.plaintext)
                if key.get("kind") != "megolm_key" or str(key.get("channel_id")) != str(channel_id):
                    raise ValueError("not a key for this channel")
                if not sessions.add_inbound(
                    channel_id,
                    author_id,
                    shared.sender_device,
                    str(key["session_id"]),
                    str(key["session_key"]),
                ):
                    raise ValueError("session key refused")
            except (ValueError, KeyError, AttributeError) as exc:
                problem.append(f"; the key share was refused: {exc}")

        try:
            ciphertext = b64decode(str(envelope.get("ciphertext")))
            shared = await device.decrypt(author_id, ciphertext, keep=keep)
        except Undecryptable as exc:
            return f"; the key share did not decrypt: {exc.reason.value}"
        except ValueError as exc:
            return f"; the key share was refused: {exc}"
        if shared.identity_changed:
            self._events.dispatch("identity_changed", author_id, shared.sender_device)
        else:
            self._dms.note_sender(author_id, shared.sender_device, known)
        return "".join(problem)
