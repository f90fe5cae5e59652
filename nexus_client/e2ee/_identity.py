"""This device's long-term keys, as X3DH (the ``x3dh`` package) manages them: an identity
key (Ed25519 form, so the relay can check signatures with plain Ed25519), a signed
prekey, and one-time prekeys whose private halves stay here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final

import x3dh
import xeddsa

from nexus_protocol.e2ee import encode_curve_key, encode_edwards_key

from ._errors import E2EEError

# X3DH's parameters, fixed for the protocol (docs/e2ee.md).
IDENTITY_FORMAT: Final = x3dh.IdentityKeyFormat.ED_25519
HASH: Final = x3dh.HashFunction.SHA_256
INFO: Final = b"Nexus X3DH v1"


class _X3DHState(x3dh.BaseState):
    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        if key_format is x3dh.IdentityKeyFormat.CURVE_25519:
            return encode_curve_key(pub)
        return encode_edwards_key(pub)


@dataclass(frozen=True, slots=True)
class PeerBundle:
    """A peer device's prekey bundle, as the relay handed it out."""

    identity_key: bytes
    signed_prekey: bytes
    signed_prekey_signature: bytes
    one_time_prekey: bytes | None


class DeviceIdentity:
    """The X3DH state of this device. Serialise with ``to_json``; keep it secret."""

    def __init__(self, state: _X3DHState) -> None:
        self.state = state

    @classmethod
    def generate(cls, one_time_prekeys: int = 100) -> DeviceIdentity:
        state = _X3DHState.create(IDENTITY_FORMAT, HASH, INFO)
        state.generate_pre_keys(one_time_prekeys)
        return cls(state)

    @classmethod
    def from_json(cls, text: str) -> DeviceIdentity:
        try:
            state, _ = _X3DHState.from_json(json.loads(text), IDENTITY_FORMAT, HASH, INFO)
        except (ValueError, TypeError) as exc:
            raise E2EEError("the stored device identity is damaged") from exc
        return cls(state)

    def to_json(self) -> str:
        return json.dumps(self.state.json, separators=(",", ":"))

    @property
    def identity_key(self) -> bytes:
        return self.state.bundle.identity_key

    @property
    def signed_prekey(self) -> tuple[bytes, bytes]:
        bundle = self.state.bundle
        return bundle.signed_pre_key, bundle.signed_pre_key_sig

    @property
    def signed_prekey_age(self) -> int:
        """Seconds since the signed prekey was generated."""
        return self.state.signed_pre_key_age()

    def rotate_signed_prekey(self) -> None:
        """A new signed prekey; the previous one is kept for one more rotation, so X3DH
        first messages built on it (bundles claimed before) still decrypt."""
        self.state.rotate_signed_pre_key()

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature by the identity key (plain Ed25519: anyone verifies it
        with the identity key as published)."""
        return bytes(xeddsa.ed25519_seed_sign(self.state.model.identity_key.secret, message))

    @property
    def secret_digest(self) -> bytes:
        """A 32-byte key derived from the identity secret (pickles group sessions)."""
        return hashlib.sha256(
            b"Nexus megolm pickle v1" + self.state.model.identity_key.secret
        ).digest()

    def one_time_prekeys(self) -> frozenset[bytes]:
        return self.state.bundle.pre_keys

    def add_one_time_prekeys(self, count: int) -> list[bytes]:
        """Generate ``count`` more; returns their public halves, to upload."""
        before = self.one_time_prekeys()
        self.state.generate_pre_keys(count)
        return sorted(self.one_time_prekeys() - before)

    def bundle_for(self, peer: PeerBundle) -> x3dh.Bundle:
        pre_keys = frozenset() if peer.one_time_prekey is None else {peer.one_time_prekey}
        return x3dh.Bundle(
            identity_key=peer.identity_key,
            signed_pre_key=peer.signed_prekey,
            signed_pre_key_sig=peer.signed_prekey_signature,
            pre_keys=frozenset(pre_keys),
        )
