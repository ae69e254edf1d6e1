"""Identifiers shaped like Fly's: 14-hex machine ids, ULID versions, vol_ ids, fdaa: addresses."""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VOLUME_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

_ADJECTIVES = (
    "ancient", "autumn", "billowing", "bold", "broken", "calm", "cool", "crimson", "damp",
    "dawn", "delicate", "divine", "dry", "empty", "falling", "fancy", "floral", "fragrant",
    "frosty", "gentle", "green", "hidden", "holy", "icy", "lingering", "little", "lively",
    "long", "misty", "morning", "muddy", "nameless", "old", "patient", "polished", "proud",
    "purple", "quiet", "restless", "rough", "shy", "silent", "small", "snowy", "solitary",
    "sparkling", "spring", "still", "summer", "twilight", "wandering", "weathered", "white",
    "wild", "winter", "wispy", "withered", "young",
)  # fmt: skip
_NOUNS = (
    "bird", "breeze", "brook", "bush", "butterfly", "cherry", "cloud", "darkness", "dawn",
    "dew", "dream", "dust", "feather", "field", "fire", "firefly", "flower", "fog", "forest",
    "frog", "frost", "glade", "glitter", "grass", "haze", "hill", "lake", "leaf", "meadow",
    "moon", "morning", "mountain", "night", "paper", "pine", "pond", "rain", "resonance",
    "river", "sea", "shadow", "shape", "silence", "sky", "smoke", "snow", "snowflake", "sound",
    "star", "sun", "sunset", "surf", "thunder", "tree", "violet", "voice", "water", "wave",
    "wildflower", "wind", "wood",
)  # fmt: skip


def machine_id() -> str:
    return secrets.token_hex(7)


def ulid(now: float | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def volume_id() -> str:
    return "vol_" + "".join(secrets.choice(_VOLUME_ALPHABET) for _ in range(16))


def nonce() -> str:
    return secrets.token_hex(16)


def machine_name() -> str:
    adjective = secrets.choice(_ADJECTIVES)
    noun = secrets.choice(_NOUNS)
    return f"{adjective}-{noun}-{secrets.randbelow(9000) + 1000}"


def private_ip(org_numeric_id: int) -> str:
    """A 6PN address: fdaa:0:<org>:a7b:<host>:<machine>:<machine>:2."""
    org = org_numeric_id & 0xFFFF
    host = secrets.randbits(8) | 0x100
    return f"fdaa:0:{org:x}:a7b:{host:x}:{secrets.randbits(16):x}:{secrets.randbits(16):x}:2"


def app_id() -> str:
    return "".join(secrets.choice(_VOLUME_ALPHABET) for _ in range(20))


def zone() -> str:
    return secrets.token_hex(2)
