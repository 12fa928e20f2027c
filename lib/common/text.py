"""Text that users and links supply (head names, dataset and class names, link values), made safe to show.

Streamlit renders most strings as Markdown: a name like `![x](http://…)` would make every browser that
shows it fetch that address, `[Log in](…)` would be a link, `:material/warning:` an icon and `$x$`
LaTeX. Everything a user or a link supplied goes through `md_escape` (or `md_message` for our own
messages that quote it) before it reaches Markdown; names are also cleaned of characters that
change how text around them looks (newlines, right-to-left overrides) with `clean_name`.
"""

from __future__ import annotations

import re

# Characters that reorder text (right-to-left overrides, isolates, marks): a name containing them can
# make the words after it read backwards in captions, charts and generated code.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# CommonMark lets a backslash escape any ASCII punctuation, so escaping all of it leaves no syntax.
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Two things Markdown does without any syntax to escape: Streamlit turns :name: (and :material/name:)
# into an emoji or icon even when the colons are escaped, and GitHub-flavoured Markdown turns bare
# http://…, www.… and name@host.… into links. An invisible word joiner after a ':' or '@' that is
# followed by more than a space, and inside 'www.', breaks both patterns without changing what is shown.
_LINK_OR_ICON = re.compile(r"([:@])(?=\S)|(?<=www)(?=\\\.)", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def clean_name(text: object, max_chars: int | None = None) -> str:
    """A name as it may be shown anywhere: one line, in reading order, single spaces, not too long.

    Control characters (newlines, tabs) become spaces; bidirectional controls, which reorder the text
    around them, are removed; runs of whitespace become one space; names over max_chars are cut,
    ending in '…'.
    """
    text = _one_line(text).strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def _one_line(text: object) -> str:
    return re.sub(r"\s+", " ", _BIDI.sub("", _CONTROL.sub(" ", str(text))))


def md_escape(text: object) -> str:
    """Text shown as itself inside a line of Streamlit Markdown: no emphasis, links, images, HTML,
    lists, headings, LaTeX, :colour[...] or :icon: — and on one line, without direction overrides."""
    escaped = _ASCII_PUNCTUATION.sub(r"\\\1", _one_line(text))
    return _LINK_OR_ICON.sub(lambda m: (m.group(1) or "") + _WORD_JOINER, escaped)


def md_message(text: object) -> str:
    """One of our messages (e.g. a DataError's) as Markdown: its `code spans` stay code, the rest,
    which may quote user input, is escaped."""
    parts = re.split(r"(`[^`\n]+`)", str(text))
    return "".join(_one_line(p) if i % 2 else md_escape(p) for i, p in enumerate(parts))
