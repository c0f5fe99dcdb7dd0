"""DSA from ``cryptography``, which marks the algorithm deprecated.

Handle.Net servers and administrators still hold DSA keys (HS_PUBKEY
``DSA_PUB_KEY``), so a node must read them and check their signatures. Every
name the node needs is taken here, once, with that deprecation warning
silenced; no other module touches ``cryptography``'s ``dsa`` module.
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from cryptography.hazmat.primitives.asymmetric import dsa as _dsa

    DSAPublicKey = _dsa.DSAPublicKey
    DSAPrivateKey = _dsa.DSAPrivateKey
    DSAPublicNumbers = _dsa.DSAPublicNumbers
    DSAParameterNumbers = _dsa.DSAParameterNumbers
    generate_private_key = _dsa.generate_private_key

__all__ = [
    "DSAParameterNumbers",
    "DSAPrivateKey",
    "DSAPublicKey",
    "DSAPublicNumbers",
    "generate_private_key",
]
