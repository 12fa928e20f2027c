"""How a refusal or a note about user data is worded: short lists ("a, b and 4 more"), counts, sizes,
and the user's own input quoted clipped, with control and invisible characters escaped (`_q`).

Package-private helpers of lib.data (its loaders and the gallery).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

MAX_LISTED = 5  # names quoted in one message before "and N more"

SHOWN_CHARS = 60  # of a user's input quoted in a message


def _listing(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    """'a, b, c' or 'a, b, c and 4 more'."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit:,} more"


class _Examples:
    """The first few of many problems, and how many there were: a message stays short."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_LISTED:
            self.shown.append(text)

    def __len__(self) -> int:
        return self.count

    def listing(self) -> str:
        more = self.count - len(self.shown)
        return ", ".join(self.shown) + (f" and {more:,} more" if more else "")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _clip(text: object, limit: int = SHOWN_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _q(text: object) -> str:
    """A user's input quoted for a message: clipped, control and invisible characters escaped."""
    return repr(_clip(text))


def _show(text: object) -> str:
    """The same without quotes, for paths within a sentence."""
    return _q(text)[1:-1]


def _why(e: BaseException, base: Path | None = None) -> str:
    """An exception's reason for a message, without the server's paths (an OSError names the file)."""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    if base is not None:
        text = text.replace(f"{base}{os.sep}", "").replace(str(base), "")
    return _clip(text, 80)
