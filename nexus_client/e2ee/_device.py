"""``E2EEDevice``: this device's end of every pairwise session (X3DH + Double Ratchet).

No I/O but the local store: the network side (``nexus_client._dm``) fetches bundles and
delivers envelopes.

Invariants:

- A session's state is on disk before the envelope it produced leaves this object (a
  crash never reuses a message key), and a decrypted envelope's digest is written in the
  same transaction as the session change it caused (never decrypted twice) — and so is
  whatever the caller's ``keep`` records of the plaintext (never lost).
- The signed prekey is rotated when older than the caller's limit; the previous one is
  kept until the next rotation, so a first message built on it still decrypts.
- Per peer device, up to ``MAX_SESSIONS`` sessions are kept, newest first: when both
  sides start a session at the same moment, messages under either still decrypt, and
  whichever last decrypted becomes the one we send with (libsignal's behaviour).
- Until a session has decrypted something from its peer, every message it sends carries
  the X3DH header (a "prekey message"), so the peer can start from any of them: the
  first may be lost or arrive late.
- A peer key of small order is refused before any DH is computed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import doubleratchet
import x3dh

from nexus_protocol.e2ee import is_low_order_ed25519, is_low_order_x25519

from ..store import E2EETable
from ._errors import E2EEError, Undecryptable, UndecryptableReason
from ._identity import DeviceIdentity, PeerBundle
from ._ratchet import Ratchet
from ._wire import Envelope, X3DHHeader, decode

MAX_SESSIONS: Final = 5
ONE_TIME_PREKEYS: Final = 100


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass(frozen=True, slots=True)
class _Session:
    ad: bytes  # X3DH's associated data: both identity keys, initiator first
    base_key: bytes  # the initiator's ephemeral key: names the session on both sides
    peer_identity: bytes
    ratchet: str | None  # Ratchet JSON; None until the initiator's first message
    pending: X3DHHeader | None  # the header to repeat until the peer answers
    secret: bytes | None  # the X3DH secret, only until the first message is sent
    their_spk: bytes | None

    def to_json(self) -> dict[str, object]:
        p = self.pending
        return {
            "ad": _b64(self.ad),
            "base_key": _b64(self.base_key),
            "peer_identity": _b64(self.peer_identity),
            "ratchet": self.ratchet,
            "pending": None
            if p is None
            else [
                _b64(p.identity_key),
                _b64(p.ephemeral_key),
                _b64(p.signed_prekey),
                None if p.one_time_prekey is None else _b64(p.one_time_prekey),
            ],
            "secret": None if self.secret is None else _b64(self.secret),
            "their_spk": None if self.their_spk is None else _b64(self.their_spk),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> _Session:
        pending = data["pending"]
        header = None
        if isinstance(pending, list):
            header = X3DHHeader(
                _unb64(pending[0]),
                _unb64(pending[1]),
                _unb64(pending[2]),
                None if pending[3] is None else _unb64(pending[3]),
            )
        secret = data["secret"]
        their_spk = data["their_spk"]
        ratchet = data["ratchet"]
        return cls(
            ad=_unb64(str(data["ad"])),
            base_key=_unb64(str(data["base_key"])),
            peer_identity=_unb64(str(data["peer_identity"])),
            ratchet=ratchet if isinstance(ratchet, str) else None,
            pending=header,
            secret=_unb64(secret) if isinstance(secret, str) else None,
            their_spk=_unb64(their_spk) if isinstance(their_spk, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Decrypted:
    sender_user: int
    sender_device: str
    plaintext: bytes
    identity_changed: bool


def _routing(sender: tuple[int, str], recipient: tuple[int, str]) -> bytes:
    # Bound into every message: an envelope cannot be replayed to another device or
    # attributed to another sender without failing authentication.
    return f"{sender[0]}:{sender[1]}>{recipient[0]}:{recipient[1]}".encode("ascii")


class E2EEDevice:
    """This device. Create with ``open`` (loads from the store, or generates)."""

    def __init__(self, user_id: int, device_id: str, identity: DeviceIdentity, table: E2EETable):
        self.user_id = user_id
        self.device_id = device_id
        self.identity = identity
        self._table = table
        self._sessions: dict[tuple[int, str], list[_Session]] = {}
        for key, text in table.sessions().items():
            self._sessions[key] = [_Session.from_json(s) for s in json.loads(text)]

    @classmethod
    def open(cls, table: E2EETable, user_id: int) -> E2EEDevice:
        stored = table.identity()
        if stored is not None:
            if stored[0] != user_id:
                raise E2EEError("this store belongs to another account")
            return cls(user_id, stored[1], DeviceIdentity.from_json(stored[2]), table)
        device_id = secrets.token_urlsafe(16)
        identity = DeviceIdentity.generate(ONE_TIME_PREKEYS)
        table.save_identity(user_id, device_id, identity.to_json())
        return cls(user_id, device_id, identity, table)

    @property
    def identity_key(self) -> bytes:
        return self.identity.identity_key

    # -- keys for the relay ---------------------------------------------------------------

    def replenish(
        self, relay_count: int, *, low: int = 25, target: int = ONE_TIME_PREKEYS
    ) -> list[bytes]:
        """New one-time prekeys to upload when the relay holds fewer than ``low``."""
        if relay_count >= low:
            return []
        fresh = self.identity.add_one_time_prekeys(min(target - relay_count, 100))
        self._table.save_identity(self.user_id, self.device_id, self.identity.to_json())
        return fresh

    def rotate_signed_prekey(self, max_age: float) -> bool:
        """A new signed prekey if the current one is ``max_age`` seconds old or older
        (the previous one still answers first messages built on it until the next
        rotation). Returns whether it rotated; the caller uploads the new one."""
        if self.identity.signed_prekey_age < max_age:
            return False
        self.identity.rotate_signed_prekey()
        self._table.save_identity(self.user_id, self.device_id, self.identity.to_json())
        return True

    # -- sessions -----------------------------------------------------------------------

    def forget_peer(self, user_id: int, device_id: str) -> None:
        """That device is gone: drop its identity key and every session with it."""
        self._table.forget_peer(user_id, device_id)
        self._sessions.pop((user_id, device_id), None)

    def has_session(self, user_id: int, device_id: str) -> bool:
        return bool(self._sessions.get((user_id, device_id)))

    async def start_session(self, user_id: int, device_id: str, bundle: PeerBundle) -> None:
        """X3DH with a peer's bundle (x3dh checks the signed prekey's signature)."""
        for key in (bundle.signed_prekey, bundle.one_time_prekey):
            if key is not None and is_low_order_x25519(key):
                raise E2EEError("the peer's bundle has a key of small order: refused")
        if is_low_order_ed25519(bundle.identity_key):
            raise E2EEError("the peer's identity key is of small order: refused")
        try:
            secret, ad, header = await self.identity.state.get_shared_secret_active(
                self.identity.bundle_for(bundle), require_pre_key=False
            )
        except x3dh.KeyAgreementException as exc:
            raise E2EEError(f"key agreement failed: {exc}") from exc
        session = _Session(
            ad=ad,
            base_key=header.ephemeral_key,
            peer_identity=bundle.identity_key,
            ratchet=None,
            pending=X3DHHeader(
                header.identity_key, header.ephemeral_key, header.signed_pre_key, header.pre_key
            ),
            secret=secret,
            their_spk=bundle.signed_prekey,
        )
        self._table.save_peer_key(user_id, device_id, bundle.identity_key)
        self._put(user_id, device_id, session, seen=None)

    def _put(
        self,
        user_id: int,
        device_id: str,
        session: _Session,
        *,
        seen: bytes | None,
        identity_changed: bool = False,
        keep: Callable[[], None] | None = None,
    ) -> None:
        others = [
            s
            for s in self._sessions.get((user_id, device_id), [])
            if s.base_key != session.base_key
        ]
        sessions = [session, *others][:MAX_SESSIONS]
        with self._table.transaction():
            self._table.save_session(
                user_id,
                device_id,
                json.dumps([s.to_json() for s in sessions], separators=(",", ":")),
                seen=seen,
                identity_state=self.identity.to_json() if identity_changed else None,
            )
            if keep is not None:
                keep()
        self._sessions[(user_id, device_id)] = sessions

    # -- encrypt --------------------------------------------------------------------------

    async def encrypt(self, user_id: int, device_id: str, plaintext: bytes) -> tuple[bool, bytes]:
        """``(is_prekey_message, envelope bytes)`` for one peer device."""
        sessions = self._sessions.get((user_id, device_id))
        if not sessions:
            raise E2EEError(f"no session with device {device_id} of user {user_id}")
        session = sessions[0]
        ad = session.ad + _routing((self.user_id, self.device_id), (user_id, device_id))
        if session.ratchet is None:
            assert session.secret is not None and session.their_spk is not None
            ratchet, message = await Ratchet.start_sending(
                session.secret, session.their_spk, plaintext, ad
            )
        else:
            ratchet = Ratchet.loads(session.ratchet)
            message = await ratchet.encrypt_message(plaintext, ad)
        updated = replace(session, ratchet=ratchet.dumps(), secret=None, their_spk=None)
        self._put(user_id, device_id, updated, seen=None)
        envelope = Envelope(
            sender_device=self.device_id,
            x3dh=session.pending,
            ratchet_pub=message.header.ratchet_pub,
            previous_chain_length=message.header.previous_sending_chain_length,
            message_number=message.header.sending_chain_length,
            ciphertext=message.ciphertext,
        )
        return session.pending is not None, envelope.encode()

    # -- decrypt --------------------------------------------------------------------------

    async def decrypt(
        self, sender_user: int, data: bytes, *, keep: Callable[[Decrypted], None] | None = None
    ) -> Decrypted:
        """Decrypt an envelope addressed to this device; ``Undecryptable`` says why not.
        ``keep`` (which must not raise) records the result in the same transaction as
        the session change, so a crash cannot consume the message and lose its text."""
        envelope = decode(data)
        digest = hashlib.sha256(data).digest()
        if self._table.has_seen(digest):
            raise Undecryptable(UndecryptableReason.REPLAY, "envelope already decrypted")
        if sender_user == self.user_id and envelope.sender_device == self.device_id:
            raise Undecryptable(UndecryptableReason.MALFORMED, "claims to come from this device")
        peer = (sender_user, envelope.sender_device)
        if is_low_order_x25519(envelope.ratchet_pub):
            raise Undecryptable(UndecryptableReason.BAD_KEY, "ratchet key of small order")
        ad_tail = _routing(peer, (self.user_id, self.device_id))
        message = doubleratchet.EncryptedMessage(
            header=doubleratchet.Header(
                envelope.ratchet_pub, envelope.previous_chain_length, envelope.message_number
            ),
            ciphertext=envelope.ciphertext,
        )
        sessions = self._sessions.get(peer, [])
        if envelope.x3dh is not None:
            for session in sessions:
                if session.base_key == envelope.x3dh.ephemeral_key and session.ratchet:
                    return await self._decrypt_with([session], peer, message, ad_tail, digest, keep)
            return await self._accept_prekey(peer, envelope.x3dh, message, ad_tail, digest, keep)
        usable = [s for s in sessions if s.ratchet is not None]
        if not usable:
            raise Undecryptable(UndecryptableReason.NO_SESSION, f"no session with {peer[1]}")
        return await self._decrypt_with(usable, peer, message, ad_tail, digest, keep)

    async def _decrypt_with(
        self,
        sessions: list[_Session],
        peer: tuple[int, str],
        message: doubleratchet.EncryptedMessage,
        ad_tail: bytes,
        digest: bytes,
        keep: Callable[[Decrypted], None] | None,
    ) -> Decrypted:
        reasons: list[UndecryptableReason] = []
        for session in sessions:
            assert session.ratchet is not None
            ratchet = Ratchet.loads(session.ratchet)
            try:
                plaintext = await ratchet.decrypt_message(message, session.ad + ad_tail)
            except doubleratchet.DuplicateMessageException:
                reasons.append(UndecryptableReason.REPLAY)
                continue
            except doubleratchet.DoSProtectionException:
                reasons.append(UndecryptableReason.TOO_FAR_AHEAD)
                continue
            except (
                doubleratchet.AuthenticationFailedException,
                doubleratchet.DecryptionFailedException,
                ValueError,
            ):
                reasons.append(UndecryptableReason.TAMPERED)
                continue
            # The peer has this session: stop repeating the X3DH header; send with it.
            updated = replace(session, ratchet=ratchet.dumps(), pending=None)
            result = Decrypted(peer[0], peer[1], plaintext, identity_changed=False)
            self._put(peer[0], peer[1], updated, seen=digest, keep=_bind(keep, result))
            return result
        for reason in (UndecryptableReason.REPLAY, UndecryptableReason.TOO_FAR_AHEAD):
            if reason in reasons:
                raise Undecryptable(reason)
        raise Undecryptable(UndecryptableReason.TAMPERED, "authentication failed")

    async def _accept_prekey(
        self,
        peer: tuple[int, str],
        header: X3DHHeader,
        message: doubleratchet.EncryptedMessage,
        ad_tail: bytes,
        digest: bytes,
        keep: Callable[[Decrypted], None] | None,
    ) -> Decrypted:
        if is_low_order_ed25519(header.identity_key) or is_low_order_x25519(header.ephemeral_key):
            raise Undecryptable(UndecryptableReason.BAD_KEY, "X3DH key of small order")
        state = self.identity.state
        try:
            secret, ad, spk = await state.get_shared_secret_passive(
                x3dh.Header(
                    header.identity_key,
                    header.ephemeral_key,
                    header.signed_prekey,
                    header.one_time_prekey,
                ),
                require_pre_key=False,
            )
        except x3dh.KeyAgreementException as exc:
            # Most often a prekey message replayed after its one-time prekey was used.
            raise Undecryptable(UndecryptableReason.UNKNOWN_PREKEY, str(exc)) from exc
        except ValueError as exc:
            raise Undecryptable(UndecryptableReason.BAD_KEY, str(exc)) from exc
        try:
            ratchet, plaintext = await Ratchet.start_receiving(
                secret, spk.priv, message, ad + ad_tail
            )
        except doubleratchet.DoSProtectionException as exc:
            raise Undecryptable(UndecryptableReason.TOO_FAR_AHEAD) from exc
        except (
            doubleratchet.AuthenticationFailedException,
            doubleratchet.DecryptionFailedException,
            ValueError,
        ) as exc:
            raise Undecryptable(UndecryptableReason.TAMPERED, "authentication failed") from exc
        if header.one_time_prekey is not None:
            state.delete_pre_key(header.one_time_prekey)
        changed = self._table.save_peer_key(peer[0], peer[1], header.identity_key)
        result = Decrypted(peer[0], peer[1], plaintext, identity_changed=changed)
        session = _Session(
            ad=ad,
            base_key=header.ephemeral_key,
            peer_identity=header.identity_key,
            ratchet=ratchet.dumps(),
            pending=None,
            secret=None,
            their_spk=None,
        )
        self._put(
            peer[0], peer[1], session, seen=digest, identity_changed=True, keep=_bind(keep, result)
        )
        return result


def _bind(keep: Callable[[Decrypted], None] | None, result: Decrypted) -> Callable[[], None] | None:
    return None if keep is None else lambda: keep(result)
