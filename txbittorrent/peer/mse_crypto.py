"""The ciphers and randomness under ``core.wire.mse``: RC4 from ``cryptography``.

The sans-I/O handshake takes ``new_rc4(key)`` and ``randbytes(n)``; these are
the real ones.  RC4 is OpenSSL's, through ``cryptography`` (in its
``decrepit`` module since version 43; the older location is the fallback),
so no byte of the data path goes through a Python loop.  Randomness is the
operating system's (``os.urandom``): private keys must not be predictable.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher

from txbittorrent.core.wire.mse import StreamCipher

__all__ = ["new_rc4", "randbytes"]


def _arc4_class() -> Any:
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
    except ImportError:  # cryptography < 43
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from cryptography.hazmat.primitives.ciphers.algorithms import (
                ARC4,
            )
    return ARC4


_ARC4 = _arc4_class()


def new_rc4(key: bytes) -> StreamCipher:
    """A fresh RC4 stream keyed with ``key`` (nothing discarded: the
    handshake discards the first 1024 bytes itself)."""
    cipher = Cipher(_ARC4(key), mode=None)
    stream: StreamCipher = cipher.encryptor()
    return stream


def randbytes(n: int) -> bytes:
    """``n`` bytes from the operating system's random source."""
    return os.urandom(n)
