"""Inline buttons under an answer, and what their callback data means.

Telegram gives a button 1-64 bytes of ``callback_data`` and nothing else, so the
data names what to do in a form that survives restarts and index reloads:

* ``ctx:<ref>`` — the paragraphs around a quote. ``ref`` comes from the index and is
  stable while its article is unchanged, so the button works across restarts.
* ``more:<token>:<offset>`` — the next quotes. ``token`` names a question kept in an
  in-memory LRU (:class:`AnswerCache`); after a restart the token is unknown and the
  button says it expired; after a reload the question is asked again.

PTB's ``arbitrary_callback_data`` is deliberately not used: it needs persistence to
survive restarts, and a lost entry would turn a press into an error.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from index import Quote

MAX_CALLBACK_BYTES = 64  # telegram.constants.InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
CONTEXT_PREFIX = "ctx:"
MORE_PREFIX = "more:"
BUTTONS_PER_ROW = 4


@dataclass(frozen=True)
class ContextRequest:
    ref: str


@dataclass(frozen=True)
class MoreRequest:
    token: str
    offset: int


def encode_context(ref: str) -> str:
    return _checked(f"{CONTEXT_PREFIX}{ref}")


def encode_more(token: str, offset: int) -> str:
    return _checked(f"{MORE_PREFIX}{token}:{offset}")


def _checked(data: str) -> str:
    size = len(data.encode("utf-8"))
    if not 1 <= size <= MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data of {size} bytes (Telegram allows 1-64): {data!r}")
    return data


def decode(data: str | None) -> ContextRequest | MoreRequest | None:
    """What a button press asks for, or None for data this bot never made (or made long ago)."""
    if not data:
        return None
    if data.startswith(CONTEXT_PREFIX):
        ref = data[len(CONTEXT_PREFIX) :]
        return ContextRequest(ref) if ref else None
    if data.startswith(MORE_PREFIX):
        token, _, offset = data[len(MORE_PREFIX) :].rpartition(":")
        if token and offset.isdigit():
            return MoreRequest(token, int(offset))
    return None


@dataclass(frozen=True)
class AnswerRecord:
    """A question that was answered, and the index build that answered it.

    The quotes are not kept: asking the same index the same question with the same
    ``k`` gives the same quotes, so More asks again (tens of milliseconds) and the
    cache stays small however long the answers were.
    """

    question: str
    build_id: str


class AnswerCache:
    """A bounded LRU of recent answers, by short random token (for the More button)."""

    def __init__(self, max_size: int = 20_000) -> None:
        self.max_size = max_size
        self._items: OrderedDict[str, AnswerRecord] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, record: AnswerRecord) -> str:
        token = secrets.token_urlsafe(6)  # 8 characters
        with self._lock:
            while token in self._items:
                token = secrets.token_urlsafe(6)
            self._items[token] = record
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return token

    def get(self, token: str) -> AnswerRecord | None:
        with self._lock:
            record = self._items.get(token)
            if record is not None:
                self._items.move_to_end(token)
            return record

    def __len__(self) -> int:
        return len(self._items)


def answer_keyboard(
    quotes: Sequence[Quote], first_number: int | None, more: str | None
) -> InlineKeyboardMarkup | None:
    """Buttons: "Context" per quote on the page (numbered like the quotes), "More" if any remain."""
    buttons = []
    for i, quote in enumerate(quotes):
        label = "Context" if first_number is None else f"Context {first_number + i}"
        try:
            buttons.append(InlineKeyboardButton(label, callback_data=encode_context(quote.ref)))
        except ValueError:
            continue  # a ref too long for callback data: no button rather than a rejected message
    rows = [buttons[i : i + BUTTONS_PER_ROW] for i in range(0, len(buttons), BUTTONS_PER_ROW)]
    if more is not None:
        rows.append([InlineKeyboardButton("More ▸", callback_data=more)])
    return InlineKeyboardMarkup(rows) if rows else None


def _is_more(button: InlineKeyboardButton) -> bool:
    data = button.callback_data
    return isinstance(data, str) and data.startswith(MORE_PREFIX)


def has_more(markup: InlineKeyboardMarkup | None) -> bool:
    return markup is not None and any(_is_more(b) for row in markup.inline_keyboard for b in row)


def without_more(markup: InlineKeyboardMarkup | None) -> InlineKeyboardMarkup | None:
    """``markup`` minus its More button (once pressed, the next page has its own)."""
    if markup is None:
        return None
    rows = [[b for b in row if not _is_more(b)] for row in markup.inline_keyboard]
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(rows)
