"""The Double Ratchet as Signal specifies it, from the ``doubleratchet`` package:
X25519 DH ratchet, HKDF-SHA-256 root chain, HMAC-SHA-256 message chains (constants 0x01
for message keys and 0x02 for the next chain key), AES-256-CBC + HMAC-SHA-256 AEAD
(Signal's recommended construction), and a skipped-message window of 2,000 (libsignal's).
"""

from __future__ import annotations

import json
from typing import Final

import doubleratchet
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

MAX_SKIP: Final = 2000
_MESSAGE_CHAIN_CONSTANT: Final = b"\x01\x02"


class _RootChainKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"Nexus Double Ratchet root chain"


class _MessageChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"Nexus Double Ratchet message keys"


class _DHRatchet(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    pass


class Ratchet(doubleratchet.DoubleRatchet):
    """One pairwise Double Ratchet session (decryption changes state only on success)."""

    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        # Length-prefixed so (associated data, header) parses one way only.
        return (
            len(associated_data).to_bytes(4, "big")
            + associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(4, "big")
            + header.sending_chain_length.to_bytes(4, "big")
        )

    @classmethod
    async def start_sending(
        cls, shared_secret: bytes, their_ratchet_pub: bytes, plaintext: bytes, ad: bytes
    ) -> tuple[Ratchet, doubleratchet.EncryptedMessage]:
        return await cls.encrypt_initial_message(
            _DHRatchet,
            _RootChainKDF,
            _MessageChainKDF,
            _MESSAGE_CHAIN_CONSTANT,
            MAX_SKIP,
            MAX_SKIP,
            _AEAD,
            shared_secret,
            their_ratchet_pub,
            plaintext,
            ad,
        )

    @classmethod
    async def start_receiving(
        cls,
        shared_secret: bytes,
        own_ratchet_priv: bytes,
        message: doubleratchet.EncryptedMessage,
        ad: bytes,
    ) -> tuple[Ratchet, bytes]:
        return await cls.decrypt_initial_message(
            _DHRatchet,
            _RootChainKDF,
            _MessageChainKDF,
            _MESSAGE_CHAIN_CONSTANT,
            MAX_SKIP,
            MAX_SKIP,
            _AEAD,
            shared_secret,
            own_ratchet_priv,
            message,
            ad,
        )

    @classmethod
    def loads(cls, text: str) -> Ratchet:
        return cls.from_json(
            json.loads(text),
            _DHRatchet,
            _RootChainKDF,
            _MessageChainKDF,
            _MESSAGE_CHAIN_CONSTANT,
            MAX_SKIP,
            MAX_SKIP,
            _AEAD,
        )

    def dumps(self) -> str:
        return json.dumps(self.json, separators=(",", ":"))
