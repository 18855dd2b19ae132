"""WeChat's message signatures and safe-mode (安全模式) AES encryption.

Signature: SHA-1 over the sorted strings (token, timestamp, nonce[, Encrypt]) joined.
Safe mode: AES-256-CBC, key = base64(EncodingAESKey + "="), IV = the key's first 16 bytes,
PKCS#7 padded to 32-byte blocks; the plaintext is 16 random bytes, the XML's length as 4 bytes
big-endian, the XML, then the app id.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher as _AES, algorithms, modes

BLOCK = 32   # WeChat pads to 32 bytes, not AES's 16


class CryptoError(ValueError):
    """The payload cannot be decrypted: wrong key, bad padding or length (a client error)."""


class AppIdMismatch(CryptoError):
    """The payload decrypted but names another app: a message for someone else."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(given: str | None, *parts: str) -> bool:
    # Constant-time compare: a forger learns nothing from timing.
    return bool(given) and hmac.compare_digest(signature(*parts), given.lower())


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key from the 43-character EncodingAESKey; CryptoError if malformed."""
    if len(encoding_aes_key) != 43:
        raise CryptoError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise CryptoError("EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise CryptoError("EncodingAESKey must decode to 32 bytes")
    return key


class Cipher:
    def __init__(self, encoding_aes_key: str) -> None:
        self._key = aes_key(encoding_aes_key)

    def _aes(self):
        return _AES(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, xml: str, app_id: str, random16: bytes | None = None) -> str:
        body = xml.encode()
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + app_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        enc = self._aes().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    def decrypt(self, payload: str, app_id: str) -> str:
        """The XML inside `payload`; CryptoError unless padding, length and app id all hold."""
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("payload is not base64") from None
        if not data or len(data) % 16:
            raise CryptoError("payload is not a whole number of AES blocks")
        dec = self._aes().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding (wrong EncodingAESKey?)")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CryptoError("payload too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoError("declared length exceeds the payload")
        try:
            xml = plain[20:20 + length].decode()
            found = plain[20 + length:].decode()
        except UnicodeDecodeError:
            raise CryptoError("payload is not UTF-8") from None
        if not hmac.compare_digest(found.encode(), app_id.encode()):
            raise AppIdMismatch(f"payload is for app id {found!r}")
        return xml
