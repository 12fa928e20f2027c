"""Room codes, teacher secrets and participant ids: what a room is known by.

A room code is read off a projector and typed on a phone, so it is short (6 characters) and drawn
from an alphabet without the characters people confuse (0/O, 1/I/L); what a participant types is
normalised (lower case, spaces, dashes) before it is looked up. The code is public: anyone in the
room sees it. The teacher's secret is not, and it is long and random (`secrets`), because it is
the only thing that lets someone change a room.
"""

from __future__ import annotations

import re
import secrets

# 31 characters: digits and capitals without 0, O, 1, I and L. 31**6 ≈ 887 million codes, so with a
# few hundred open rooms a random code collides about once in a million creations (create_room retries).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6
# What people put between the characters when they copy a code: spaces, dashes, dots, underscores.
_SEPARATORS = re.compile(r"[\s\-_.\u2010-\u2015\u2212]+")


def new_code() -> str:
    """A fresh random room code, e.g. 'K7QH2W'."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: object) -> str | None:
    """The room code someone typed or a link carried ('k7q-h2w ' -> 'K7QH2W'), or None when it cannot
    be one (wrong length, or a character that is never in a code)."""
    if not isinstance(text, str):
        return None
    code = _SEPARATORS.sub("", text).upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def new_secret() -> str:
    """The teacher's secret for one room: 32 random bytes, URL-safe (it travels in the teacher's link)."""
    return secrets.token_urlsafe(32)


def new_participant_id() -> str:
    """A participant's id, one per browser session: what makes a second vote in a round replace the first."""
    return secrets.token_urlsafe(16)
