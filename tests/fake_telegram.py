"""A fake Telegram Bot API server for exercising the bot without reaching Telegram.

Why: the bot's behaviour is only meaningful against Telegram's real rules (HTML allow-list,
4096 UTF-16 units, 64-byte callback data, 50 inline results, 429 flood waits, webhook secrets,
getUpdates conflicts).  Mocking ``telegram.Bot`` would hide exactly the mistakes that make a
deployed bot go silent, so this server speaks the HTTP Bot API that python-telegram-bot really
talks to, validates like Telegram does and records everything for assertions.

Usage in tests::

    async with FakeTelegram(token="123456:TEST-TOKEN") as server:
        app = ApplicationBuilder().token(server.token).base_url(server.base_url) \
            .base_file_url(server.base_file_url).build()
        ...
        update = server.user_message("/start")
        reply = await server.wait_for_reply(update)
        assert server.violations == []

Standalone (e.g. for a container sharing the host network)::

    python -m tests.fake_telegram --port 0 --token 123:ABC              # serve, print BASE_URL=
    python -m tests.fake_telegram --token 123:ABC --send "hello"        # one round trip, exit 0/1

Only loopback traffic: the server binds 127.0.0.1 and only POSTs webhooks to loopback hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import EllipsisType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, web

__all__ = [
    "DEFAULT_TOKEN",
    "Call",
    "EntityParseError",
    "FakeTelegram",
    "FakeTelegramThread",
    "WebhookDelivery",
    "main",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "utf16_len",
]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units of the visible text
MAX_ENTITIES = 100
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_RESULTS = 50
MAX_CALLBACK_ANSWER_CHARS = 200

T = TypeVar("T")
JSON = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Telegram error descriptions (copied from what the real Bot API answers)
# --------------------------------------------------------------------------------------------
ERR_NOT_FOUND = "Not Found"
ERR_UNAUTHORIZED = "Unauthorized"
ERR_CHAT_NOT_FOUND = "Bad Request: chat not found"
ERR_TEXT_EMPTY = "Bad Request: message text is empty"
ERR_TOO_LONG = "Bad Request: message is too long"
ERR_TOO_MANY_ENTITIES = "Bad Request: too many entities"
ERR_PARSE = "Bad Request: can't parse entities: "
ERR_PARSE_MODE = "Bad Request: unsupported parse_mode"
ERR_BUTTON_DATA = "Bad Request: BUTTON_DATA_INVALID"
ERR_BUTTON_URL = "Bad Request: BUTTON_URL_INVALID"
ERR_TEXT_BUTTONS = "Bad Request: text buttons are unallowed in the inline keyboard"
ERR_MARKUP = "Bad Request: can't parse reply keyboard markup JSON object"
ERR_RESULTS_TOO_MUCH = "Bad Request: RESULTS_TOO_MUCH"
ERR_RESULT_ID_INVALID = "Bad Request: RESULT_ID_INVALID"
ERR_RESULT_ID_DUPLICATE = "Bad Request: RESULT_ID_DUPLICATE"
ERR_RESULT_TYPE_INVALID = "Bad Request: RESULT_TYPE_INVALID"
ERR_RESULTS_JSON = "Bad Request: can't parse inline query results JSON object"
ERR_QUERY_INVALID = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
ERR_MESSAGE_TOO_LONG_RAW = "Bad Request: MESSAGE_TOO_LONG"
ERR_MESSAGE_EMPTY_RAW = "Bad Request: MESSAGE_EMPTY"
ERR_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
ERR_CANT_EDIT = "Bad Request: message can't be edited"
ERR_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
ERR_DELETE_NOT_FOUND = "Bad Request: message to delete not found"
ERR_CANT_DELETE = "Bad Request: message can't be deleted"
ERR_REPLY_NOT_FOUND = "Bad Request: message to be replied not found"
ERR_MSG_ID_UNSPECIFIED = "Bad Request: message identifier is not specified"
ERR_MSG_ID_INVALID = "Bad Request: MESSAGE_ID_INVALID"
ERR_CHAT_ACTION = "Bad Request: wrong parameter action in request"
ERR_COMMAND_INVALID = "Bad Request: BOT_COMMAND_INVALID"
ERR_COMMAND_DESCRIPTION = "Bad Request: command description must be non-empty"
ERR_COMMANDS_TOO_MUCH = "Bad Request: BOT_COMMANDS_TOO_MUCH"
ERR_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
ERR_POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
ERR_BLOCKED = "Forbidden: bot was blocked by the user"
ERR_KICKED_GROUP = "Forbidden: bot was kicked from the group chat"
ERR_KICKED_SUPERGROUP = "Forbidden: bot was kicked from the supergroup chat"

NGINX_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
INLINE_RESULT_TYPES = frozenset(
    {
        "article",
        "photo",
        "gif",
        "mpeg4_gif",
        "video",
        "audio",
        "voice",
        "document",
        "location",
        "venue",
        "contact",
        "game",
        "sticker",
    }
)
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
# Fields PTB sends as plain strings; everything else arrives JSON-encoded in form bodies.
STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "query",
        "url",
        "secret_token",
        "callback_query_id",
        "inline_query_id",
        "parse_mode",
        "next_offset",
        "language_code",
        "action",
        "inline_message_id",
        "ip_address",
        "description",
        "short_description",
        "name",
        "title",
        "emoji",
        "switch_pm_text",
        "switch_pm_parameter",
        "business_connection_id",
        "message_effect_id",
        "file_id",
        "custom_emoji_id",
    }
)
UPDATE_TYPES_DEFAULT_EXCLUDED = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)


# --------------------------------------------------------------------------------------------
# Text helpers: UTF-16 lengths and Telegram's three parse modes (ported from tdlib's rules)
# --------------------------------------------------------------------------------------------
class EntityParseError(ValueError):
    """Text is not valid for the parse mode; str(exc) is Telegram's description suffix."""


def utf16_len(text: str) -> int:
    """Telegram measures lengths and entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _u16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "blockquote": "blockquote",
}
_HTML_SPACE = " \t\r\n\v\0"
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_URL_SCHEMES = ("http", "https", "tg", "ton", "mailto", "ftp")


def _decode_html_entity(text: str, pos: int, strict: bool) -> tuple[str, int] | None:
    """Decode ``&...;`` at ``pos`` like tdlib; strict mode also demands the ``;``."""
    n = len(text)
    end = pos + 1
    if end < n and text[end] == "#":
        end += 1
        value = 0
        if end < n and text[end] in "xX":
            end += 1
            start = end
            while end < n and text[end] in "0123456789abcdefABCDEF":
                end += 1
            digits = text[start:end]
            value = int(digits, 16) if digits else 0
        else:
            start = end
            while end < n and text[end].isdigit() and text[end].isascii():
                end += 1
            digits = text[start:end]
            value = int(digits) if digits else 0
        if value == 0 or value >= 0x10FFFF or end - pos >= 10 or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        start = end
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        name = text[start:end]
        if name not in _NAMED_ENTITIES:
            return None
        char = _NAMED_ENTITIES[name]
    if end < n and text[end] == ";":
        return char, end + 1
    if strict:
        return None
    return char, end


def _normalize_url(url: str) -> str | None:
    """Return the URL Telegram would store for a link, or None if Telegram would drop it."""
    url = url.strip()
    if not url or any(c in url for c in " \n\t"):
        return None
    parts = urlsplit(url if "://" in url or url.startswith(("tg:", "mailto:")) else f"http://{url}")
    if parts.scheme.lower() not in _URL_SCHEMES:
        return None
    if parts.scheme.lower() in ("http", "https", "ftp", "ton"):
        host = parts.hostname or ""
        if not host or ("." not in host and host != "localhost"):
            return None
    return parts.geturl()


@dataclass
class _OpenTag:
    tag: str
    argument: str
    u16_start: int
    byte_pos: int
    expandable: bool = False


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[JSON]]:
    """Parse Telegram HTML into (visible text, entities) or raise EntityParseError.

    The tag grammar and error wording follow tdlib's ``parse_html``.  ``strict`` additionally
    rejects what Telegram's documentation forbids but tdlib silently tolerates: a bare ``&`` or
    ``>``, unknown named entities such as ``&foo;``, ``<a>`` without ``href`` and links whose
    URL Telegram would drop.  Those rules are marked "(strict)" in the error text.
    """
    n = len(text)
    out: list[str] = []
    u16 = 0
    stack: list[_OpenTag] = []
    entities: list[JSON] = []
    i = 0

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_html_entity(text, i, strict)
            if decoded is not None:
                ch, i = decoded
                out.append(ch)
                u16 += _u16(ch)
                continue
            if strict:
                m = re.match(r"&#?[A-Za-z0-9]*;?", text[i:])
                snippet = m.group(0) if m else "&"
                where = f"at byte offset {_byte_offset(text, i)}"
                if snippet == "&":
                    msg = f'Unescaped "&" {where}; use "&amp;"'
                else:
                    msg = f'Unsupported HTML entity "{snippet}" {where}'
                raise EntityParseError(msg + " (strict)")
            out.append(c)
            u16 += 1
            i += 1
            continue
        if c == ">" and strict:
            raise EntityParseError(
                f'Unescaped ">" at byte offset {_byte_offset(text, i)}; use "&gt;" (strict)'
            )
        if c != "<":
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue

        begin = i
        begin_byte = _byte_offset(text, begin)
        i += 1
        if at(i) != "/":
            tag_begin = i
            while at(i) not in _HTML_SPACE and at(i) != ">":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin_byte}")
            tag = text[tag_begin:i].lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin_byte}')
            argument = ""
            expandable = False
            has_href = False
            while at(i) != ">":
                while i < n and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) == ">":
                    break
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin_byte}")
                attr_begin = i
                while at(i) not in _HTML_SPACE and at(i) not in "=>":
                    i += 1
                attr_name = text[attr_begin:i].lower()
                if not attr_name:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin_byte}'
                    )
                while i < n and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) != "=":
                    if tag == "blockquote" and attr_name == "expandable":
                        expandable = True
                        continue
                    raise EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin_byte}'
                    )
                i += 1
                while i < n and at(i) in _HTML_SPACE:
                    i += 1
                if i >= n:
                    raise EntityParseError(
                        f'Unclosed start tag "{tag}" at byte offset {begin_byte}'
                    )
                if at(i) not in "'\"":
                    token_begin = i
                    while (at(i).isascii() and at(i).isalnum()) or at(i) in ".-":
                        i += 1
                    value = text[token_begin:i].lower()
                    if at(i) not in _HTML_SPACE and at(i) != ">":
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset "
                            f"{_byte_offset(text, token_begin)}"
                        )
                    if i >= n:
                        raise EntityParseError(f"Unclosed start tag at byte offset {begin_byte}")
                else:
                    quote = at(i)
                    i += 1
                    buf: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            dec = _decode_html_entity(text, i, False)
                            if dec is not None:
                                buf.append(dec[0])
                                i = dec[1]
                                continue
                        buf.append(text[i])
                        i += 1
                    if i < n:
                        i += 1
                    if i >= n:
                        raise EntityParseError(f"Unclosed start tag at byte offset {begin_byte}")
                    value = "".join(buf)
                if tag == "a" and attr_name == "href":
                    argument = value
                    has_href = True
                elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attr_name == "emoji-id":
                    argument = value
            i += 1  # the '>'
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin_byte}'
                )
            if strict and tag == "a" and not has_href:
                raise EntityParseError(
                    f'Tag "a" must have attribute "href" at byte offset {begin_byte} (strict)'
                )
            if strict and tag == "a" and _normalize_url(argument) is None:
                raise EntityParseError(
                    f'Invalid URL "{argument}" in tag "a" at byte offset {begin_byte}: '
                    "Telegram would silently drop this link (strict)"
                )
            if strict and tag == "tg-emoji" and not argument:
                raise EntityParseError(
                    f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {begin_byte}'
                    " (strict)"
                )
            stack.append(_OpenTag(tag, argument, u16, begin_byte, expandable))
        else:
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin_byte}")
            i += 1
            name_begin = i
            while at(i) not in _HTML_SPACE and at(i) != ">":
                i += 1
            end_name = text[name_begin:i].lower()
            while i < n and at(i) in _HTML_SPACE:
                i += 1
            if at(i) != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {begin_byte}")
            i += 1
            top = stack[-1]
            if end_name and end_name != top.tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin_byte}, expected "</{top.tag}>", '
                    f'found "</{end_name}>"'
                )
            if u16 > top.u16_start:
                _close_html_entity(top, u16, "".join(out), entities)
            stack.pop()
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for ent in entities:
        ent.pop("_language", None)
    # Outer entities close last; list them first when two cover the same span, as tdlib does.
    order = {id(e): k for k, e in enumerate(entities)}
    entities.sort(key=lambda e: (e["offset"], -e["length"], -order[id(e)]))
    return "".join(out), entities


def _close_html_entity(top: _OpenTag, u16_end: int, visible: str, entities: list[JSON]) -> None:
    offset, length = top.u16_start, u16_end - top.u16_start
    etype = _HTML_ENTITY_TYPES[top.tag]
    entity: JSON = {"type": etype, "offset": offset, "length": length}
    if top.tag == "a":
        url = top.argument
        if not url:
            # tdlib turns <a>url</a> into a link to its own text when that text is a URL.
            url = visible.encode("utf-16-le")[offset * 2 :].decode("utf-16-le")
        normalized = _normalize_url(url)
        if normalized is None:
            return
        entity["url"] = normalized
    elif top.tag == "code" and top.argument:
        entity["_language"] = top.argument
    elif top.tag == "pre":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == offset
            and last["length"] == length
            and last.get("_language")
        ):
            entities.pop()
            entity["language"] = last["_language"]
    elif top.tag == "tg-emoji":
        entity["custom_emoji_id"] = top.argument
    elif top.tag == "blockquote" and top.expandable:
        entity["type"] = "expandable_blockquote"
    entities.append(entity)


_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"


def parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Parse MarkdownV2 like tdlib's ``parse_markdown_v2`` (errors use its wording)."""
    n = len(text)
    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    # (type, argument, u16 start, byte offset, index in out)
    stack: list[list[Any]] = []
    quote_start: int | None = None
    quote_expandable = False
    i = 0

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    def reserved_error(ch: str) -> EntityParseError:
        return EntityParseError(
            f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
        )

    def close_quote() -> None:
        nonlocal quote_start, quote_expandable
        if quote_start is not None and u16 > quote_start:
            qtype = "expandable_blockquote" if quote_expandable else "blockquote"
            entities.append({"type": qtype, "offset": quote_start, "length": u16 - quote_start})
        quote_start = None
        quote_expandable = False

    while i < n:
        c = text[i]
        line_start = i == 0 or text[i - 1] == "\n"
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        if line_start and not in_code:
            if c == ">" or text.startswith("**>", i):
                if quote_start is None:
                    quote_start = u16
                if c == "*":
                    quote_expandable = True
                    i += 3
                else:
                    i += 1
                continue
            if quote_start is not None:
                close_quote()
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        reserved = "`" if in_code else _MDV2_RESERVED
        if c not in reserved:
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        if (
            quote_start is not None
            and not stack
            and text.startswith("||", i)
            and (i + 2 >= n or text[i + 2] == "\n")
        ):
            quote_expandable = True
            i += 2
            continue
        is_end = False
        if stack:
            top = stack[-1][0]
            is_end = {
                "bold": c == "*",
                "italic": c == "_" and at(i + 1) != "_",
                "code": c == "`",
                "pre": c == "`" and at(i + 1) == "`" and at(i + 2) == "`",
                "text_link": c == "]",
                "underline": c == "_" and at(i + 1) == "_",
                "strikethrough": c == "~",
                "spoiler": c == "|" and at(i + 1) == "|",
                "custom_emoji": c == "]",
            }[top]
        if not is_end:
            byte_pos = _byte_offset(text, i)
            argument = ""
            if c == "_":
                if at(i + 1) == "_":
                    etype = "underline"
                    i += 1
                else:
                    etype = "italic"
            elif c == "*":
                etype = "bold"
            elif c == "~":
                etype = "strikethrough"
            elif c == "|":
                if at(i + 1) != "|":
                    raise reserved_error(c)
                etype = "spoiler"
                i += 1
            elif c == "[":
                etype = "text_link"
            elif c == "`":
                if at(i + 1) == "`" and at(i + 2) == "`":
                    i += 3
                    etype = "pre"
                    lang_end = i
                    while at(lang_end) not in _HTML_SPACE and at(lang_end) != "`":
                        lang_end += 1
                    if i != lang_end and lang_end < n and text[lang_end] != "`":
                        argument = text[i:lang_end]
                        i = lang_end
                    if at(i) in "\r\n":
                        if at(i + 1) in "\r\n" and at(i) != at(i + 1):
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    etype = "code"
            elif c == "!":
                if at(i + 1) != "[":
                    raise reserved_error(c)
                i += 1
                etype = "custom_emoji"
            else:
                raise reserved_error(c)
            stack.append([etype, argument, u16, byte_pos, len(out)])
            i += 1
            continue
        etype, argument, start, _byte_pos, out_index = stack.pop()
        skip = u16 == start
        entity: JSON = {"type": etype, "offset": start, "length": u16 - start}
        if etype in ("underline", "spoiler"):
            i += 1
        elif etype == "pre":
            i += 2
            if argument:
                entity["language"] = argument
        elif etype in ("text_link", "custom_emoji"):
            if at(i + 1) != "(":
                if etype == "custom_emoji":
                    raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                url = "".join(out[out_index:])
            else:
                i += 2
                url_begin = i
                buf: list[str] = []
                while i < n and text[i] != ")":
                    if text[i] == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                        buf.append(text[i + 1])
                        i += 2
                        continue
                    buf.append(text[i])
                    i += 1
                if at(i) != ")":
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, url_begin)}"
                    )
                url = "".join(buf)
            if etype == "custom_emoji":
                m = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                if not m:
                    raise EntityParseError("Custom emoji URL must have an emoji identifier")
                entity["custom_emoji_id"] = m.group(1)
            else:
                normalized = _normalize_url(url)
                if normalized is None:
                    skip = True
                else:
                    entity["url"] = normalized
        if not skip:
            entities.append(entity)
        i += 1
    if stack:
        names = {
            "bold": "Bold",
            "italic": "Italic",
            "underline": "Underline",
            "strikethrough": "Strikethrough",
            "spoiler": "Spoiler",
            "code": "Code",
            "pre": "PreCode" if stack[-1][1] else "Pre",
            "text_link": "TextUrl",
            "custom_emoji": "CustomEmoji",
        }
        raise EntityParseError(
            f"Can't find end of {names[stack[-1][0]]} entity at byte offset {stack[-1][3]}"
        )
    close_quote()
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_markdown(text: str) -> tuple[str, list[JSON]]:
    """Parse legacy Markdown (V1) like tdlib's ``parse_markdown``."""
    n = len(text)
    out: list[str] = []
    u16 = 0
    entities: list[JSON] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            u16 += _u16(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        language = ""
        i += 1
        if c == "`" and text.startswith("``", i):
            i += 2
            is_pre = True
            lang_end = i
            while lang_end < n and text[lang_end] not in _HTML_SPACE and text[lang_end] != "`":
                lang_end += 1
            if i != lang_end and lang_end < n and text[lang_end] != "`":
                language = text[i:lang_end]
                i = lang_end
            if i < n and text[i] in "\r\n":
                i += 1
        start = u16
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("```", i))):
            out.append(text[i])
            u16 += _u16(text[i])
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        entity: JSON | None = None
        if u16 > start:
            etype = {"_": "italic", "*": "bold", "`": "pre" if is_pre else "code", "[": "text_link"}
            entity = {"type": etype[c], "offset": start, "length": u16 - start}
            if language:
                entity["language"] = language
        if c == "[":
            url = ""
            if i + 1 < n and text[i + 1] == "(":
                i += 2
                url_begin = i
                while i < n and text[i] != ")":
                    url += text[i]
                    i += 1
                if i >= n:
                    raise EntityParseError(
                        "Can't find end of the entity starting at byte offset "
                        f"{_byte_offset(text, url_begin)}"
                    )
            normalized = _normalize_url(url) if url else None
            if entity is not None:
                if normalized is None:
                    entity = None
                else:
                    entity["url"] = normalized
        if is_pre:
            i += 2
        if entity is not None:
            entities.append(entity)
        i += 1
    return "".join(out), entities


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
@dataclass
class Call:
    """One Bot API request as the server saw and answered it."""

    method: str
    params: JSON
    status: int
    response: Any  # decoded JSON body, or the raw text for non-JSON (proxy) answers
    time: float  # time.time() when the request arrived
    duration: float = 0.0
    injected: bool = False  # answered by fail_next(), not by the emulated API
    violation: bool = False  # the fake rejected it as Telegram would
    index: int = -1  # position in FakeTelegram.all_calls

    @property
    def ok(self) -> bool:
        return isinstance(self.response, dict) and self.response.get("ok") is True

    @property
    def result(self) -> Any:
        return self.response.get("result") if isinstance(self.response, dict) else None

    @property
    def description(self) -> str | None:
        return self.response.get("description") if isinstance(self.response, dict) else None

    def short(self) -> str:
        params = {k: v for k, v in self.params.items() if k != "_raw"}
        text = json.dumps(params, ensure_ascii=False, default=str)
        if len(text) > 160:
            text = text[:157] + "..."
        extra = "" if self.ok else f" -> {self.description or str(self.response)[:80]!r}"
        tag = " [injected]" if self.injected else ""
        return f"#{self.index} {self.status} {self.method}{tag} {text}{extra}"


@dataclass
class WebhookDelivery:
    """One POST of an update to the bot's webhook and what the bot answered."""

    update: JSON
    url: str
    secret: str | None
    status: int | None  # None when the connection failed
    body: str
    time: float
    error: str | None = None
    deliberate: bool = False  # sent by deliver_webhook(), e.g. with a wrong secret on purpose

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Fault:
    methods: frozenset[str] | None  # lower-cased method names; None = any but getUpdates
    any_method: bool
    status: int | None
    retry_after: int
    times: int
    description: str | None
    delay: float


@dataclass
class _RandomFaults:
    """Faults drawn per request from a seeded generator (see FakeTelegram.random_faults)."""

    rng: random.Random
    rate_429: float
    rate_5xx: float
    rate_drop: float
    retry_after: int
    methods: frozenset[str] | None  # lower-cased; None = every method, getUpdates included

    def draw(self, method: str) -> _Fault | None:
        if self.methods is not None and method.lower() not in self.methods:
            return None
        roll = self.rng.random()
        status: int | None = None
        if roll < self.rate_429:
            status = 429
        elif roll < self.rate_429 + self.rate_5xx:
            status = self.rng.choice((500, 502, 503, 504))
        elif roll < self.rate_429 + self.rate_5xx + self.rate_drop:
            status = 0
        if status is None:
            return None
        return _Fault(None, True, status, self.retry_after, 1, None, 0.0)


@dataclass
class _Poll:
    request: web.Request
    terminated: asyncio.Event = field(default_factory=asyncio.Event)


class ApiError(Exception):
    """Raised by method handlers; becomes a Telegram error response."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class _Answer:
    result: Any
    description: str | None = None


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------
class FakeTelegram:
    """In-process fake of the Telegram Bot API (HTTP, aiohttp) with validation and recording.

    All injection helpers are synchronous and must be called from the event loop the server
    runs on (the test's loop).  Everything that waits takes a bounded timeout.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_first_name: str = "QuoteBot",
        bot_username: str = "quote_test_bot",
        strict_html: bool = True,
        privacy_mode: bool = True,
        max_poll_timeout: float = 2.0,
        webhook_timeout: float = 5.0,
        webhook_max_attempts: int = 3,
        allow_non_loopback_webhook: bool = False,
    ) -> None:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
            raise ValueError(f"malformed bot token {token!r}; expected '<digits>:<secret>'")
        self.token = token
        self.host = host
        self.port = port
        self.strict_html = strict_html
        self.privacy_mode = privacy_mode
        self.max_poll_timeout = max_poll_timeout
        self.webhook_timeout = webhook_timeout
        self.webhook_max_attempts = webhook_max_attempts
        self.allow_non_loopback_webhook = allow_non_loopback_webhook
        self.bot_user: JSON = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }

        self.all_calls: list[Call] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.withheld: list[tuple[JSON, str]] = []  # updates Telegram would not deliver
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.callback_answers: dict[str, JSON] = {}
        self.inline_answers: dict[str, JSON] = {}

        self._chats: dict[int, JSON] = {}
        self._chat_usernames: dict[str, int] = {}
        self._messages: dict[int, dict[int, JSON]] = {}
        self._message_ids: dict[int, int] = {}
        self._users: dict[int, JSON] = {}
        self._forbidden: dict[int, str] = {}
        self._pending: list[JSON] = []
        self._update_ids = itertools.count(700_000_001)
        self._query_ids = itertools.count(4_382_001_234_567_000)
        self._callback_queries: dict[str, JSON] = {}
        self._inline_queries: dict[str, JSON] = {}
        self._inject_marks: dict[int, int] = {}
        self._allowed_updates: list[str] = []
        self._faults: list[_Fault] = []
        self._random_faults: _RandomFaults | None = None
        self._outage_until = 0.0
        self._outage_status = 502
        self._held: frozenset[str] = frozenset()
        self._holding = 0  # requests waiting for release()
        self._released = asyncio.Event()
        self._released.set()
        self._webhook: JSON | None = None
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._active_poll: _Poll | None = None
        self._updates_changed = asyncio.Event()
        self._calls_changed = asyncio.Event()
        self._closing = asyncio.Event()
        self.bot_connected = asyncio.Event()  # set by the first getUpdates / setWebhook

        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._handlers: dict[str, Callable[[JSON], Awaitable[Any]]] = {
            "getMe": self._m_get_me,
            "logOut": self._m_true,
            "close": self._m_true,
            "getUpdates": self._m_get_updates_placeholder,
            "setWebhook": self._m_set_webhook,
            "deleteWebhook": self._m_delete_webhook,
            "getWebhookInfo": self._m_get_webhook_info,
            "setMyCommands": self._m_set_my_commands,
            "getMyCommands": self._m_get_my_commands,
            "deleteMyCommands": self._m_delete_my_commands,
            "setMyDescription": self._m_true,
            "setMyShortDescription": self._m_true,
            "setMyName": self._m_true,
            "setChatMenuButton": self._m_true,
            "getChat": self._m_get_chat,
            "sendMessage": self._m_send_message,
            "editMessageText": self._m_edit_message_text,
            "editMessageReplyMarkup": self._m_edit_message_reply_markup,
            "deleteMessage": self._m_delete_message,
            "answerCallbackQuery": self._m_answer_callback_query,
            "answerInlineQuery": self._m_answer_inline_query,
            "sendChatAction": self._m_send_chat_action,
        }
        self._method_names = {name.lower(): name for name in self._handlers}

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> FakeTelegram:
        """Bind to ``host:port`` (port 0 picks a free one) and start serving."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.*}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        # handler_cancellation: a long poll whose client went away must not linger as "active".
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = ClientSession(timeout=ClientTimeout(total=self.webhook_timeout))
        return self

    async def stop(self) -> None:
        """Wake every long poll, stop webhook delivery and close the listener (bounded)."""
        self._closing.set()
        self._updates_changed.set()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._webhook_task
            self._webhook_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), timeout=10)
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``: requests become ``POST /bot<T>/<m>``."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def api_url(self) -> str:
        """The full per-token API prefix, for raw HTTP clients."""
        return f"{self.base_url}{self.token}"

    # ---------------------------------------------------------------- fault injection
    def fail_next(
        self,
        method: str | Iterable[str] | None = None,
        *,
        status: int | None = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` matching calls fail before reaching the emulated API.

        ``method``: a name, several names, None (any method except getUpdates, so a background
        poller does not swallow the fault) or ``"*"`` (really any).  ``status``: 429 answers
        Telegram's flood-wait JSON with ``retry_after``; 502/503/504 answer an nginx HTML page
        like a proxy outage; 500 answers Telegram's JSON "Internal Server Error"; other codes a
        JSON error; 0 drops the connection without an answer; None only applies ``delay``.
        """
        if method == "*":
            methods, any_method = None, True
        elif method is None:
            methods, any_method = None, False
        else:
            names = [method] if isinstance(method, str) else list(method)
            methods, any_method = frozenset(m.lower() for m in names), False
        self._faults.append(
            _Fault(methods, any_method, status, retry_after, times, description, delay)
        )

    def delay_next(
        self, method: str | Iterable[str] | None, seconds: float, times: int = 1
    ) -> None:
        """Answer the next matching calls normally but only after ``seconds``."""
        self.fail_next(method, status=None, delay=seconds, times=times)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._random_faults = None
        self._outage_until = 0.0

    def random_faults(
        self,
        seed: int,
        *,
        rate_429: float = 0.0,
        rate_5xx: float = 0.0,
        rate_drop: float = 0.0,
        retry_after: int = 1,
        methods: Iterable[str] | None = None,
    ) -> None:
        """From now on fail requests at random, reproducibly (``seed``), like a flaky Telegram.

        Each request is failed with probability ``rate_429`` (flood wait with
        ``retry_after``), ``rate_5xx`` (500/502/503/504) or ``rate_drop`` (connection dropped
        without an answer). The seed fixes the sequence of draws; which request gets which
        draw still depends on the order requests arrive in. Like every injected fault here,
        the request never reaches the emulated API, so a failed request has no effect (a
        retry cannot duplicate it).
        ``methods`` limits it to some methods (default: all, getUpdates included).
        ``clear_faults()`` stops it.
        """
        names = None if methods is None else frozenset(m.lower() for m in methods)
        self._random_faults = _RandomFaults(
            random.Random(seed), rate_429, rate_5xx, rate_drop, retry_after, names
        )

    def outage(self, seconds: float, *, status: int = 502) -> None:
        """For the next ``seconds``, answer every request (any method) with ``status``
        (0: drop the connection), as when Telegram or the network in between is down."""
        self._outage_until = time.monotonic() + seconds
        self._outage_status = status

    @property
    def in_outage(self) -> bool:
        return time.monotonic() < self._outage_until

    def hold(self, method: str | Iterable[str]) -> None:
        """Keep requests of ``method`` waiting, unanswered and without effect, until
        :meth:`release` — a Telegram that is slow to answer. A client that gives up (or
        dies) meanwhile is recorded as 499 and its request never takes effect."""
        names = [method] if isinstance(method, str) else list(method)
        self._held = frozenset(m.lower() for m in names)
        if self._released.is_set():
            self._released = asyncio.Event()

    @property
    def holding(self) -> int:
        """How many requests are held right now (a client that went away no longer counts)."""
        return self._holding

    def release(self) -> None:
        """Let held requests (and new ones) through."""
        self._held = frozenset()
        self._released.set()

    @property
    def pending_update_ids(self) -> list[int]:
        """Updates queued for the bot and not yet confirmed by a later getUpdates offset
        (or a 2xx webhook answer): the ones Telegram would still deliver after a restart."""
        return [u["update_id"] for u in self._pending]

    def _take_fault(self, method: str) -> _Fault | None:
        if time.monotonic() < self._outage_until:
            return _Fault(None, True, self._outage_status, 1, 1, None, 0.0)
        lower = method.lower()
        for fault in self._faults:
            if fault.times <= 0:
                continue
            if (
                fault.any_method
                or (fault.methods is None and lower != "getupdates")
                or (fault.methods is not None and lower in fault.methods)
            ):
                fault.times -= 1
                self._faults = [f for f in self._faults if f.times > 0]
                return fault
        if self._random_faults is not None:
            return self._random_faults.draw(method)
        return None

    # ---------------------------------------------------------------- HTTP plumbing
    async def _read_params(self, request: web.Request) -> JSON:
        params: JSON = {}
        for key, value in request.query.items():
            params[key] = _decode_form_value(key, value)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise ApiError(400, "Bad Request: can't parse JSON request body") from exc
                if not isinstance(body, dict):
                    raise ApiError(400, "Bad Request: JSON request body must be an object")
                for key, value in body.items():
                    if isinstance(value, str) and key not in STRING_FIELDS:
                        value = _decode_form_value(key, value)
                    params[key] = value
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"_file": value.filename, "size": len(value.file.read())}
                    else:
                        params[key] = _decode_form_value(key, str(value))
        return params

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        return _json_response(404, {"ok": False, "error_code": 404, "description": ERR_NOT_FOUND})

    async def _handle_file(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        raw_method = request.match_info["method"]
        method = self._method_names.get(raw_method.lower(), raw_method)
        params: JSON = {}
        injected = False
        try:
            params = await self._read_params(request)
            if method.lower() in self._held:
                self._holding += 1
                try:
                    await self._released.wait()
                finally:
                    self._holding -= 1
            fault = self._take_fault(method)
            if fault is not None:
                if fault.delay > 0:
                    await asyncio.sleep(min(fault.delay, 60.0))
                if fault.status is not None:
                    injected = True
                    return await self._fault_response(request, method, params, fault, started)
            if request.match_info["token"] != self.token:
                raise ApiError(401, ERR_UNAUTHORIZED)
            if method == "getUpdates":
                return await self._get_updates(request, params, started)
            handler = self._handlers.get(method)
            if handler is None:
                raise ApiError(404, ERR_NOT_FOUND)
            answer = await handler(params)
            if not isinstance(answer, _Answer):
                answer = _Answer(answer)
            body: JSON = {"ok": True, "result": answer.result}
            if answer.description:
                body["description"] = answer.description
            self._record(method, params, 200, body, started)
            return _json_response(200, body)
        except ApiError as exc:
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
            self._record(method, params, exc.status, body, started, violation=not injected)
            return _json_response(exc.status, body)
        except asyncio.CancelledError:
            if not injected:  # the client went away mid-request (e.g. a cancelled long poll)
                self._record(method, params, 499, "client disconnected", started)
            raise

    async def _fault_response(
        self, request: web.Request, method: str, params: JSON, fault: _Fault, started: float
    ) -> web.StreamResponse:
        status = fault.status or 0
        if status == 0:
            self._record(method, params, 0, "connection dropped", started, injected=True)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if status == 429:
            retry = fault.retry_after
            body: Any = {
                "ok": False,
                "error_code": 429,
                "description": fault.description or f"Too Many Requests: retry after {retry}",
                "parameters": {"retry_after": retry},
            }
            self._record(method, params, 429, body, started, injected=True)
            return _json_response(429, body)
        phrase = _phrase(status)
        if status in (502, 503, 504):
            text = fault.description or NGINX_PAGE.format(code=status, phrase=phrase)
            self._record(method, params, status, text, started, injected=True)
            return web.Response(status=status, text=text, content_type="text/html")
        description = fault.description or (
            phrase if status >= 500 else f"{phrase}: injected fault"
        )
        body = {"ok": False, "error_code": status, "description": description}
        self._record(method, params, status, body, started, injected=True)
        return _json_response(status, body)

    def _record(
        self,
        method: str,
        params: JSON,
        status: int,
        response: Any,
        started: float,
        *,
        injected: bool = False,
        violation: bool = False,
    ) -> Call:
        call = Call(
            method=method,
            params=params,
            status=status,
            response=response,
            time=started,
            duration=time.time() - started,
            injected=injected,
            violation=violation and not injected,
            index=len(self.all_calls),
        )
        self.all_calls.append(call)
        self._calls_changed.set()
        self._calls_changed = asyncio.Event()
        return call

    # ---------------------------------------------------------------- queries on the record
    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[Call]:
        """Recorded calls, optionally of one method and/or only (un)successful ones."""
        out = self.all_calls
        if method is not None:
            out = [c for c in out if c.method.lower() == method.lower()]
        if ok is not None:
            out = [c for c in out if c.ok == ok]
        return list(out)

    @property
    def violations(self) -> list[Call]:
        """Calls the fake rejected as Telegram would (not injected faults)."""
        return [c for c in self.all_calls if c.violation]

    @property
    def webhook_failures(self) -> list[WebhookDelivery]:
        """Queued updates the bot's webhook did not accept (2xx) on some attempt."""
        return [d for d in self.webhook_deliveries if not d.ok and not d.deliberate]

    def assert_no_violations(self) -> None:
        """Fail if the bot broke a Bot API rule or its webhook refused a genuine update."""
        if self.violations or self.webhook_failures:
            raise AssertionError("the bot broke Bot API rules:\n" + self.dump(limit=None))

    def sent_messages(self, chat_id: int | None = None) -> list[JSON]:
        """Message objects returned by successful sendMessage/editMessageText, in call order."""
        out = []
        for call in self.all_calls:
            if call.ok and call.method in ("sendMessage", "editMessageText"):
                msg = call.result
                if isinstance(msg, dict) and (chat_id is None or msg["chat"]["id"] == chat_id):
                    out.append(msg)
        return out

    def messages(self, chat_id: int) -> list[JSON]:
        """Current state of every message in a chat (user and bot), by message_id."""
        return [self._messages[chat_id][k] for k in sorted(self._messages.get(chat_id, {}))]

    def bot_messages(self, chat_id: int) -> list[JSON]:
        return [m for m in self.messages(chat_id) if m["from"]["id"] == self.bot_user["id"]]

    def mark(self) -> int:
        """Index to pass as ``since=`` so waits only consider calls made from now on."""
        return len(self.all_calls)

    def dump(self, limit: int | None = 40) -> str:
        """Human-readable state for failure messages."""
        calls = self.all_calls if limit is None else self.all_calls[-limit:]
        lines = [f"calls ({len(self.all_calls)} total, showing {len(calls)}):"]
        lines += ["  " + c.short() for c in calls]
        if self.violations:
            lines.append(f"violations ({len(self.violations)}):")
            lines += ["  " + c.short() for c in self.violations]
        if self.withheld:
            lines.append("withheld updates (Telegram would not deliver them):")
            lines += [f"  {u['update_id']}: {why}" for u, why in self.withheld]
        lines.append(
            f"pending updates: {[u['update_id'] for u in self._pending]}; "
            f"webhook: {self._webhook['url'] if self._webhook else None}"
        )
        bad = self.webhook_failures
        if bad:
            lines.append("failed webhook deliveries of queued updates:")
            lines += [
                f"  {d.update['update_id']}: {d.status} {d.error or d.body[:80]}" for d in bad
            ]
        return "\n".join(lines)

    async def wait_for(
        self,
        match: str | Callable[[Call], bool],
        timeout: float = 5.0,
        *,
        since: int = 0,
        include_failed: bool = False,
    ) -> Call:
        """Wait (bounded) until a call matching ``match`` is recorded at index >= ``since``.

        ``match`` is a method name or a predicate on Call.  Only successful calls count unless
        ``include_failed``.  Raises TimeoutError with a dump of what did happen.
        """
        if isinstance(match, str):
            name = match.lower()
            desc = match

            def predicate(c: Call) -> bool:
                return c.method.lower() == name
        else:
            predicate = match
            desc = getattr(match, "__name__", repr(match))
        deadline = asyncio.get_running_loop().time() + timeout
        checked = since
        while True:
            for call in self.all_calls[checked:]:
                if (include_failed or call.ok) and predicate(call):
                    return call
            checked = max(checked, len(self.all_calls))
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no {'' if include_failed else 'successful '}call matching {desc} "
                    f"(since #{since}) within {timeout}s\n{self.dump()}"
                )
            event = self._calls_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_for_reply(
        self,
        update: JSON,
        timeout: float = 5.0,
        *,
        methods: Iterable[str] = ("sendMessage", "editMessageText"),
    ) -> Call:
        """Wait for the bot's answer to an injected update.

        Message/callback updates: a successful call of ``methods`` to that chat made after the
        update was injected.  Inline queries: the answerInlineQuery for that query id.
        """
        since = self._inject_marks.get(update.get("update_id", -1), 0)
        if "inline_query" in update:
            qid = update["inline_query"]["id"]
            return await self.wait_for(
                lambda c: (
                    c.method == "answerInlineQuery" and c.params.get("inline_query_id") == qid
                ),
                timeout,
                since=since,
            )
        chat_id = _update_chat_id(update)
        names = {m.lower() for m in methods}
        cq_id = update.get("callback_query", {}).get("id")

        def is_reply(c: Call) -> bool:
            if c.method.lower() not in names:
                return False
            if c.method == "answerCallbackQuery":
                return bool(c.params.get("callback_query_id") == cq_id)
            res = c.result
            if isinstance(res, dict) and "chat" in res:
                return bool(res["chat"]["id"] == chat_id)
            return _coerce_chat_id(c.params.get("chat_id")) == chat_id

        is_reply.__name__ = f"reply in chat {chat_id} via {sorted(names)}"
        return await self.wait_for(is_reply, timeout, since=since)

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 5.0) -> None:
        """Wait until no call (other than getUpdates) happened for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            busy = [c for c in self.all_calls if c.method != "getUpdates"]
            last = busy[-1].time + busy[-1].duration if busy else 0.0
            idle_for = time.time() - last
            if idle_for >= quiet:
                return
            if loop.time() + (quiet - idle_for) > deadline:
                raise TimeoutError(f"bot still busy after {timeout}s\n{self.dump()}")
            await asyncio.sleep(quiet - idle_for)

    # ---------------------------------------------------------------- users, chats, updates
    def user(
        self, user_id: int, *, first_name: str | None = None, username: str | None = None
    ) -> JSON:
        """The (created on demand) user object for ``user_id``."""
        if user_id not in self._users:
            self._users[user_id] = {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or f"User{user_id}",
                "username": username or f"user{user_id}",
                "language_code": "en",
            }
        return self._users[user_id]

    def chat(
        self,
        chat_id: int | None = None,
        *,
        chat_type: str = "private",
        user_id: int = 1001,
        title: str | None = None,
    ) -> JSON:
        """Create (or fetch) a chat; private chats have the user's id."""
        if chat_type == "private":
            if chat_id is not None and chat_id != user_id:
                raise ValueError("a private chat's id is its user's id")
            chat_id = user_id
        elif chat_type == "group":
            chat_id = chat_id if chat_id is not None else -200_001
        elif chat_type == "supergroup":
            chat_id = chat_id if chat_id is not None else -1_001_000_000_001
        else:
            raise ValueError(f"unsupported chat_type {chat_type!r}")
        if chat_id in self._chats:
            existing = self._chats[chat_id]
            if existing["type"] != chat_type:
                raise ValueError(f"chat {chat_id} already exists as {existing['type']}")
            return existing
        if chat_type == "private":
            user = self.user(user_id)
            chat: JSON = {
                "id": chat_id,
                "type": "private",
                "first_name": user["first_name"],
                "username": user["username"],
            }
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or "Test Group"}
            if chat_type == "group":
                chat["all_members_are_administrators"] = False
        self._chats[chat_id] = chat
        self._messages[chat_id] = {}
        self._message_ids[chat_id] = 0
        return chat

    def forbid_chat(self, chat_id: int, description: str | None = None) -> None:
        """Make sends to a chat fail with 403 (user blocked the bot / bot was kicked)."""
        chat = self._chats[chat_id]
        default = {
            "private": ERR_BLOCKED,
            "group": ERR_KICKED_GROUP,
            "supergroup": ERR_KICKED_SUPERGROUP,
        }[chat["type"]]
        self._forbidden[chat_id] = description or default

    def inject(self, body: JSON) -> JSON:
        """Queue a raw update body (without update_id) for delivery; returns the update."""
        update = {"update_id": next(self._update_ids), **body}
        self._inject_marks[update["update_id"]] = len(self.all_calls)
        kind = next(k for k in update if k != "update_id")
        allowed = self._allowed_updates
        if (allowed and kind not in allowed) or (
            not allowed and kind in UPDATE_TYPES_DEFAULT_EXCLUDED
        ):
            self.withheld.append((update, f"{kind} not in allowed_updates {allowed or 'default'}"))
            return update
        self._pending.append(update)
        self._updates_changed.set()
        self._updates_changed = asyncio.Event()
        return update

    def redeliver(self, update: JSON) -> JSON:
        """Queue ``update`` again, same ``update_id``: what Telegram does when the bot took
        an update but died before confirming it (no later getUpdates offset, no 200)."""
        if update["update_id"] not in self.pending_update_ids:
            self._pending.append(update)
            self._pending.sort(key=lambda u: u["update_id"])
            self._updates_changed.set()
            self._updates_changed = asyncio.Event()
        return update

    def user_message(
        self,
        text: str,
        *,
        chat_id: int | None = None,
        user_id: int = 1001,
        chat_type: str = "private",
        reply_to_bot_message_id: int | None = None,
        reply_to_message_id: int | None = None,
        first_name: str | None = None,
        username: str | None = None,
        entities: list[JSON] | None = None,
        queue: bool = True,
    ) -> JSON:
        """A user sends ``text``; returns the update (queued unless ``queue=False``).

        Entities for bot commands, @mentions and URLs are computed like Telegram does.  In
        groups with privacy mode (the default, as getMe reports), Telegram only delivers
        commands and replies to the bot's messages; other messages land in ``withheld``.
        """
        msg = self._user_message_base(
            chat_id,
            user_id,
            chat_type,
            first_name,
            username,
            reply_to_bot_message_id,
            reply_to_message_id,
        )
        msg["text"] = text
        ents = entities if entities is not None else _auto_entities(text)
        if ents:
            msg["entities"] = ents
        return self._deliver_user_message(msg, queue)

    def user_sticker(
        self,
        emoji: str = "👍",
        *,
        chat_id: int | None = None,
        user_id: int = 1001,
        chat_type: str = "private",
        reply_to_bot_message_id: int | None = None,
        queue: bool = True,
    ) -> JSON:
        """A user sends a sticker: a message without ``text``."""
        msg = self._user_message_base(
            chat_id, user_id, chat_type, None, None, reply_to_bot_message_id, None
        )
        uid = next(self._query_ids)
        msg["sticker"] = {
            "file_id": f"CAACAgIAAxkBAAE{uid}",
            "file_unique_id": f"AgAD{uid}",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "TestStickers",
            "file_size": 23456,
        }
        return self._deliver_user_message(msg, queue)

    def _user_message_base(
        self,
        chat_id: int | None,
        user_id: int,
        chat_type: str,
        first_name: str | None,
        username: str | None,
        reply_to_bot_message_id: int | None,
        reply_to_message_id: int | None,
    ) -> JSON:
        user = self.user(user_id, first_name=first_name, username=username)
        chat = self.chat(chat_id, chat_type=chat_type, user_id=user_id)
        msg = self._new_message(chat["id"], user)
        target_id = reply_to_bot_message_id or reply_to_message_id
        if target_id is not None:
            target = self._messages[chat["id"]].get(target_id)
            if target is None:
                raise ValueError(f"no message {target_id} in chat {chat['id']} to reply to")
            if reply_to_bot_message_id is not None and target["from"]["id"] != self.bot_user["id"]:
                raise ValueError(f"message {target_id} in chat {chat['id']} is not the bot's")
            msg["reply_to_message"] = _strip_reply(target)
        return msg

    def _deliver_user_message(self, msg: JSON, queue: bool) -> JSON:
        self._messages[msg["chat"]["id"]][msg["message_id"]] = msg
        reason = self._privacy_reason(msg)
        if not queue:
            return {"update_id": next(self._update_ids), "message": msg}
        if reason is not None:
            update = {"update_id": next(self._update_ids), "message": msg}
            self.withheld.append((update, reason))
            return update
        return self.inject({"message": msg})

    def _privacy_reason(self, msg: JSON) -> str | None:
        """Why Telegram's group privacy mode would hide this message from the bot, if it would."""
        if not self.privacy_mode or msg["chat"]["type"] == "private":
            return None
        reply = msg.get("reply_to_message")
        if reply and reply["from"]["id"] == self.bot_user["id"]:
            return None
        for ent in msg.get("entities", []):
            if ent["type"] == "bot_command" and ent["offset"] == 0:
                command = _entity_text(msg["text"], ent)
                if "@" not in command:
                    return None
                target = command.split("@", 1)[1].lower()
                if target == self.bot_user["username"].lower():
                    return None
                return f"command addressed to @{target}, not this bot"
        return (
            "group privacy mode: bots only receive commands and replies to their own messages "
            "(getMe says can_read_all_group_messages=false)"
        )

    def press_button(
        self,
        message: JSON | Call | int,
        callback_data: str,
        *,
        user_id: int | None = None,
        chat_id: int | None = None,
        strict: bool = True,
    ) -> JSON:
        """A user presses an inline button on a bot message; returns the callback_query update.

        ``message``: a message dict (e.g. from sent_messages()), a Call whose result is one, or
        a message_id together with ``chat_id``.  With ``strict`` the button must currently be
        on that message (as in a real client).  The callback query id is
        ``update["callback_query"]["id"]``.
        """
        if isinstance(message, Call):
            message = message.result
        if isinstance(message, dict):
            chat_id = message["chat"]["id"]
            message_id = message["message_id"]
        else:
            message_id = message
        if chat_id is None or chat_id not in self._messages:
            raise ValueError(f"unknown chat {chat_id}")
        current = self._messages[chat_id].get(message_id)
        if current is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        if strict:
            datas = _callback_datas(current.get("reply_markup"))
            if callback_data not in datas:
                raise ValueError(
                    f"message {message_id} has no button with callback_data {callback_data!r}; "
                    f"buttons: {datas}"
                )
        chat = self._chats[chat_id]
        if user_id is None:
            user_id = chat_id if chat["type"] == "private" else 1001
        qid = str(next(self._query_ids))
        query = {
            "id": qid,
            "from": self.user(user_id),
            "message": json.loads(json.dumps(current)),
            "chat_instance": str(-abs(chat_id) * 7919 - 1),
            "data": callback_data,
        }
        self._callback_queries[qid] = {"query": query, "answered": False}
        return self.inject({"callback_query": query})

    def inline_query(
        self, query: str, *, user_id: int = 1001, offset: str = "", chat_type: str = "private"
    ) -> JSON:
        """A user types ``@bot query``; returns the inline_query update (id in ["inline_query"])."""
        qid = str(next(self._query_ids))
        body = {
            "id": qid,
            "from": self.user(user_id),
            "query": query,
            "offset": offset,
            "chat_type": chat_type,
        }
        self._inline_queries[qid] = {"query": body, "answered": False}
        return self.inject({"inline_query": body})

    def _new_message(self, chat_id: int, sender: JSON) -> JSON:
        self._message_ids[chat_id] += 1
        return {
            "message_id": self._message_ids[chat_id],
            "from": dict(sender),
            "chat": dict(self._chats[chat_id]),
            "date": int(time.time()),
        }

    # ---------------------------------------------------------------- getUpdates
    async def _get_updates(
        self, request: web.Request, params: JSON, started: float
    ) -> web.StreamResponse:
        self.bot_connected.set()
        if self._webhook is not None:
            raise ApiError(409, ERR_WEBHOOK_ACTIVE)
        offset = _int_param(params, "offset", 0)
        limit = max(1, min(100, _int_param(params, "limit", 100)))
        timeout = max(0.0, float(_int_param(params, "timeout", 0)))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed]
            self._drop_disallowed()
        self._confirm(offset)

        previous = self._active_poll
        poll = _Poll(request)
        self._active_poll = poll
        if previous is not None:
            previous.terminated.set()
        try:
            deadline = time.monotonic() + min(timeout, self.max_poll_timeout)
            while True:
                if poll.terminated.is_set():
                    await asyncio.sleep(0.05)  # let a vanished client's disconnect register
                    gone = request.transport is None or request.transport.is_closing()
                    body = {"ok": False, "error_code": 409, "description": ERR_POLL_CONFLICT}
                    self._record("getUpdates", params, 409, body, started, violation=not gone)
                    return _json_response(409, body)
                if self._webhook is not None:
                    raise ApiError(409, ERR_WEBHOOK_ACTIVE)
                batch = self._select(offset, limit)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0 or self._closing.is_set():
                    body = {"ok": True, "result": batch}
                    self._record("getUpdates", params, 200, body, started)
                    return _json_response(200, body)
                waiter = asyncio.ensure_future(self._updates_changed.wait())
                term = asyncio.ensure_future(poll.terminated.wait())
                try:
                    await asyncio.wait(
                        {waiter, term}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
                    term.cancel()
        finally:
            if self._active_poll is poll:
                self._active_poll = None

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]

    def _select(self, offset: int, limit: int) -> list[JSON]:
        if offset < 0:
            return self._pending[offset:][:limit]
        return [u for u in self._pending if u["update_id"] >= offset][:limit]

    def _drop_disallowed(self) -> None:
        allowed = set(self._allowed_updates)
        if not allowed:
            return
        keep = []
        for update in self._pending:
            kind = next(k for k in update if k != "update_id")
            if kind in allowed:
                keep.append(update)
            else:
                self.withheld.append((update, f"{kind} not in allowed_updates {sorted(allowed)}"))
        self._pending = keep

    async def _m_get_updates_placeholder(self, params: JSON) -> Any:  # routed specially
        raise ApiError(500, "Internal Server Error")

    # ---------------------------------------------------------------- webhook
    async def _m_set_webhook(self, params: JSON) -> _Answer:
        self.bot_connected.set()
        url = params.get("url") or ""
        if not url:
            return await self._m_delete_webhook(params)
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "Bad Request: bad webhook: Webhook can be set up only on HTTPS")
        if not self.allow_non_loopback_webhook and parts.hostname not in (
            "127.0.0.1",
            "localhost",
            "::1",
        ):
            raise ApiError(
                400,
                f"Bad Request: bad webhook: the fake server only delivers to loopback, "
                f"not {parts.hostname}",
            )
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed]
            self._drop_disallowed()
        same = self._webhook is not None and self._webhook.get("url") == url
        self._webhook = {
            "url": str(url),
            "secret_token": None if secret is None else str(secret),
            "max_connections": _int_param(params, "max_connections", 40),
        }
        self._webhook_last_error = None
        if self._active_poll is not None:
            self._updates_changed.set()
            self._updates_changed = asyncio.Event()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._webhook_worker())
        return _Answer(True, "Webhook is already set" if same else "Webhook was set")

    async def _m_delete_webhook(self, params: JSON) -> _Answer:
        if params.get("drop_pending_updates"):
            self._pending.clear()
        had = self._webhook is not None
        self._webhook = None
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._webhook_task
            self._webhook_task = None
        return _Answer(True, "Webhook was deleted" if had else "Webhook is already deleted")

    async def _m_get_webhook_info(self, params: JSON) -> JSON:
        info: JSON = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            info["ip_address"] = "127.0.0.1"
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self._webhook_last_error:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    async def _webhook_worker(self) -> None:
        """Deliver pending updates one by one, in order, like Telegram; retry a few times."""
        attempts: dict[int, int] = {}
        while self._webhook is not None and not self._closing.is_set():
            if not self._pending:
                event = self._updates_changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), 0.5)
                continue
            update = self._pending[0]
            delivery = await self._post_webhook(update, self._webhook.get("secret_token"))
            if delivery.ok:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
                continue
            uid = update["update_id"]
            attempts[uid] = attempts.get(uid, 0) + 1
            status = delivery.status or 0
            reason = (
                delivery.error or f"Wrong response from the webhook: {status} {_phrase(status)}"
            )
            self._webhook_last_error = (int(time.time()), reason)
            if attempts[uid] >= self.webhook_max_attempts:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
                self.withheld.append((update, f"webhook delivery failed: {reason}"))
                continue
            await asyncio.sleep(min(0.1 * 2 ** attempts[uid], 2.0))

    async def _post_webhook(
        self, update: JSON, secret: str | None, url: str | None = None, deliberate: bool = False
    ) -> WebhookDelivery:
        assert self._session is not None, "server not started"
        target = url or (self._webhook or {}).get("url")
        if not target:
            raise RuntimeError("no webhook is set and no url given")
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        started = time.time()
        try:
            async with self._session.post(
                target, data=json.dumps(update, ensure_ascii=False).encode(), headers=headers
            ) as resp:
                body = await resp.text(errors="replace")
                delivery = WebhookDelivery(
                    update, target, secret, resp.status, body, started, deliberate=deliberate
                )
        except Exception as exc:  # connection refused, timeouts, ...
            delivery = WebhookDelivery(
                update,
                target,
                secret,
                None,
                "",
                started,
                error=f"{type(exc).__name__}: {exc}",
                deliberate=deliberate,
            )
        self.webhook_deliveries.append(delivery)
        return delivery

    async def deliver_webhook(
        self,
        update: JSON | None = None,
        *,
        secret: str | EllipsisType | None = ...,
        url: str | None = None,
    ) -> WebhookDelivery:
        """POST one update to the webhook right now, outside the queue, and return the result.

        ``secret=...`` (default) sends the secret the bot registered; pass a wrong string or
        None to check that the bot rejects it (it should answer 403).  ``update`` defaults to a
        fresh, unqueued user message.
        """
        if update is None:
            update = self.user_message("hello", queue=False)
        if secret is ...:
            secret = (self._webhook or {}).get("secret_token")
        assert not isinstance(secret, EllipsisType)
        return await self._post_webhook(update, secret, url, deliberate=True)

    async def wait_for_delivery(self, update: JSON, timeout: float = 5.0) -> WebhookDelivery:
        """Wait until the queued ``update`` was POSTed to the webhook (any outcome)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for d in self.webhook_deliveries:
                if d.update.get("update_id") == update.get("update_id"):
                    return d
            await asyncio.sleep(0.02)
        raise TimeoutError(f"update {update.get('update_id')} not delivered\n{self.dump()}")

    # ---------------------------------------------------------------- simple methods
    async def _m_true(self, params: JSON) -> bool:
        return True

    async def _m_get_me(self, params: JSON) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_get_chat(self, params: JSON) -> JSON:
        chat = self._require_chat(params)
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11}

    async def _m_set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise ApiError(400, ERR_COMMANDS_TOO_MUCH)
        clean = []
        for cmd in commands:
            if not isinstance(cmd, dict):
                raise ApiError(400, "Bad Request: can't parse BotCommand JSON object")
            name = str(cmd.get("command", ""))
            desc = str(cmd.get("description", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise ApiError(400, ERR_COMMAND_INVALID)
            if not desc.strip() or len(desc) > 256:
                raise ApiError(400, ERR_COMMAND_DESCRIPTION)
            clean.append({"command": name, "description": desc})
        self.commands[self._commands_key(params)] = clean
        return True

    async def _m_get_my_commands(self, params: JSON) -> list[JSON]:
        return list(self.commands.get(self._commands_key(params), []))

    async def _m_delete_my_commands(self, params: JSON) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _m_send_chat_action(self, params: JSON) -> bool:
        chat = self._require_chat(params)
        self._check_forbidden(chat["id"])
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, ERR_CHAT_ACTION)
        return True

    # ---------------------------------------------------------------- messages
    def _require_chat(self, params: JSON) -> JSON:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat_id = _coerce_chat_id(raw)
        if isinstance(chat_id, str):
            resolved = self._chat_usernames.get(chat_id.lstrip("@").lower())
            if resolved is None:
                raise ApiError(400, ERR_CHAT_NOT_FOUND)
            chat_id = resolved
        if chat_id not in self._chats:
            raise ApiError(400, ERR_CHAT_NOT_FOUND)
        return self._chats[chat_id]

    def _check_forbidden(self, chat_id: int) -> None:
        if chat_id in self._forbidden:
            raise ApiError(403, self._forbidden[chat_id])

    def _format(
        self, params: JSON, *, raw_errors: bool = False, text_key: str = "text"
    ) -> tuple[str, list[JSON]]:
        """Validate text + parse_mode/entities like Telegram; return visible text and entities."""
        text = params.get(text_key)
        if text is None or text == "":
            raise ApiError(400, ERR_MESSAGE_EMPTY_RAW if raw_errors else ERR_TEXT_EMPTY)
        text = str(text)
        mode = str(params.get("parse_mode") or "")
        try:
            if not mode:
                visible = text
                entities = params.get("entities") or []
                if not isinstance(entities, list):
                    raise ApiError(400, "Bad Request: can't parse entities JSON object")
            elif mode.lower() == "html":
                visible, entities = parse_html(text, strict=self.strict_html)
            elif mode.lower() == "markdownv2":
                visible, entities = parse_markdown_v2(text)
            elif mode.lower() == "markdown":
                visible, entities = parse_markdown(text)
            else:
                raise ApiError(400, ERR_PARSE_MODE)
        except EntityParseError as exc:
            raise ApiError(400, ERR_PARSE + str(exc)) from exc
        if not visible.strip():
            raise ApiError(400, ERR_MESSAGE_EMPTY_RAW if raw_errors else ERR_TEXT_EMPTY)
        if utf16_len(visible) > MAX_MESSAGE_LENGTH:
            raise ApiError(400, ERR_MESSAGE_TOO_LONG_RAW if raw_errors else ERR_TOO_LONG)
        if len(entities) > MAX_ENTITIES:
            raise ApiError(400, ERR_TOO_MANY_ENTITIES)
        return visible, entities

    def _check_markup(self, markup: Any) -> JSON | None:
        """Validate reply_markup; return the inline keyboard to store on the message, if any."""
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, ERR_MARKUP)
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ApiError(
                    400, 'Bad Request: field "inline_keyboard" must be an Array of Array'
                )
            count = 0
            for row in rows:
                for button in row:
                    count += 1
                    _check_inline_button(button)
            if count > 100:
                raise ApiError(400, "Bad Request: too many buttons in the inline keyboard")
            return {"inline_keyboard": rows} if count else None
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ApiError(400, 'Bad Request: field "keyboard" must be an Array of Array')
            for row in rows:
                for button in row:
                    label = button.get("text") if isinstance(button, dict) else button
                    if not isinstance(label, str) or not label:
                        raise ApiError(400, "Bad Request: keyboard button text must be non-empty")
            return None
        if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
            return None
        raise ApiError(400, ERR_MARKUP)

    def _reply_target(self, chat_id: int, params: JSON) -> JSON | None:
        reply_id: Any = params.get("reply_to_message_id")
        allow_missing = bool(params.get("allow_sending_without_reply"))
        rp = params.get("reply_parameters")
        if isinstance(rp, dict):
            reply_id = rp.get("message_id")
            allow_missing = bool(rp.get("allow_sending_without_reply"))
            if rp.get("chat_id") is not None and _coerce_chat_id(rp["chat_id"]) != chat_id:
                raise ApiError(400, "Bad Request: replies to other chats are not emulated")
        if reply_id is None:
            return None
        target = self._messages[chat_id].get(_int_or(reply_id, -1))
        if target is None:
            if allow_missing:
                return None
            raise ApiError(400, ERR_REPLY_NOT_FOUND)
        return _strip_reply(target)

    async def _m_send_message(self, params: JSON) -> JSON:
        chat = self._require_chat(params)
        self._check_forbidden(chat["id"])
        visible, entities = self._format(params)
        markup = self._check_markup(params.get("reply_markup"))
        reply = self._reply_target(chat["id"], params)
        msg = self._new_message(chat["id"], self.bot_user)
        if reply is not None:
            msg["reply_to_message"] = reply
        msg["text"] = visible
        if entities:
            msg["entities"] = entities
        if markup:
            msg["reply_markup"] = markup
        if params.get("link_preview_options"):
            msg["link_preview_options"] = params["link_preview_options"]
        self._messages[chat["id"]][msg["message_id"]] = msg
        return json.loads(json.dumps(msg))

    def _editable(self, params: JSON) -> JSON:
        if params.get("inline_message_id"):
            raise ApiError(400, ERR_MSG_ID_INVALID)
        if params.get("chat_id") in (None, "") or params.get("message_id") in (None, ""):
            raise ApiError(400, ERR_MSG_ID_UNSPECIFIED)
        chat = self._require_chat(params)
        msg = self._messages[chat["id"]].get(_int_or(params.get("message_id"), -1))
        if msg is None:
            raise ApiError(400, ERR_EDIT_NOT_FOUND)
        if msg["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, ERR_CANT_EDIT)
        return msg

    async def _m_edit_message_text(self, params: JSON) -> JSON:
        msg = self._editable(params)
        self._check_forbidden(msg["chat"]["id"])
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        visible, entities = self._format(params)
        markup = self._check_markup(params.get("reply_markup"))
        if (
            visible == msg["text"]
            and entities == msg.get("entities", [])
            and markup == msg.get("reply_markup")
        ):
            raise ApiError(400, ERR_NOT_MODIFIED)
        msg["text"] = visible
        _set_or_drop(msg, "entities", entities)
        _set_or_drop(msg, "reply_markup", markup)  # editing text without markup removes it
        msg["edit_date"] = int(time.time())
        return json.loads(json.dumps(msg))

    async def _m_edit_message_reply_markup(self, params: JSON) -> JSON:
        msg = self._editable(params)
        self._check_forbidden(msg["chat"]["id"])
        markup = self._check_markup(params.get("reply_markup"))
        if markup == msg.get("reply_markup"):
            raise ApiError(400, ERR_NOT_MODIFIED)
        _set_or_drop(msg, "reply_markup", markup)
        msg["edit_date"] = int(time.time())
        return json.loads(json.dumps(msg))

    async def _m_delete_message(self, params: JSON) -> bool:
        chat = self._require_chat(params)
        message_id = _int_or(params.get("message_id"), -1)
        msg = self._messages[chat["id"]].get(message_id)
        if msg is None:
            raise ApiError(400, ERR_DELETE_NOT_FOUND)
        if chat["type"] != "private" and msg["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, ERR_CANT_DELETE)
        del self._messages[chat["id"]][message_id]
        return True

    # ---------------------------------------------------------------- queries
    async def _m_answer_callback_query(self, params: JSON) -> bool:
        qid = str(params.get("callback_query_id") or "")
        entry = self._callback_queries.get(qid)
        if entry is None or entry["answered"]:
            raise ApiError(400, ERR_QUERY_INVALID)
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER_CHARS:
            raise ApiError(400, ERR_MESSAGE_TOO_LONG_RAW)
        entry["answered"] = True
        self.callback_answers[qid] = params
        return True

    async def _m_answer_inline_query(self, params: JSON) -> bool:
        qid = str(params.get("inline_query_id") or "")
        entry = self._inline_queries.get(qid)
        if entry is None or entry["answered"]:
            raise ApiError(400, ERR_QUERY_INVALID)
        results = params.get("results")
        if not isinstance(results, list):
            raise ApiError(400, ERR_RESULTS_JSON)
        if len(results) > MAX_INLINE_RESULTS:
            raise ApiError(400, ERR_RESULTS_TOO_MUCH)
        seen: set[str] = set()
        for result in results:
            if not isinstance(result, dict):
                raise ApiError(400, ERR_RESULTS_JSON)
            if result.get("type") not in INLINE_RESULT_TYPES:
                raise ApiError(400, ERR_RESULT_TYPE_INVALID)
            rid = result.get("id")
            if not isinstance(rid, str) or not 1 <= len(rid.encode()) <= 64:
                raise ApiError(400, ERR_RESULT_ID_INVALID)
            if rid in seen:
                raise ApiError(400, ERR_RESULT_ID_DUPLICATE)
            seen.add(rid)
            if result["type"] == "article":
                if not str(result.get("title") or "").strip():
                    raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
                content = result.get("input_message_content")
                if not isinstance(content, dict) or "message_text" not in content:
                    raise ApiError(400, ERR_MESSAGE_EMPTY_RAW)
                self._format(content, raw_errors=True, text_key="message_text")
            self._check_markup(result.get("reply_markup"))
        next_offset = params.get("next_offset")
        if next_offset is not None and len(str(next_offset).encode()) > 64:
            raise ApiError(400, "Bad Request: NEXT_OFFSET_INVALID")
        entry["answered"] = True
        self.inline_answers[qid] = params
        return True


# --------------------------------------------------------------------------------------------
# Module helpers
# --------------------------------------------------------------------------------------------
def _json_response(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _decode_form_value(key: str, value: str) -> Any:
    """PTB sends strings raw and everything else JSON-encoded; undo that per field."""
    if key in STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _coerce_chat_id(raw: Any) -> int | str:
    if isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _int_param(params: JSON, key: str, default: int) -> int:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"Bad Request: wrong parameter {key} in request") from exc


def _set_or_drop(msg: JSON, key: str, value: Any) -> None:
    if value:
        msg[key] = value
    else:
        msg.pop(key, None)


def _strip_reply(msg: JSON) -> JSON:
    """Telegram nests only one level of reply_to_message."""
    copy = json.loads(json.dumps(msg))
    copy.pop("reply_to_message", None)
    return copy


def _update_chat_id(update: JSON) -> int | None:
    for key in ("message", "edited_message", "channel_post"):
        if key in update:
            return int(update[key]["chat"]["id"])
    if "callback_query" in update and "message" in update["callback_query"]:
        return int(update["callback_query"]["message"]["chat"]["id"])
    return None


def _entity_text(text: str, entity: JSON) -> str:
    raw = text.encode("utf-16-le")
    start, length = entity["offset"] * 2, entity["length"] * 2
    return raw[start : start + length].decode("utf-16-le")


_AUTO_ENTITY_RE = re.compile(
    r"(?P<bot_command>(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/]))"
    r"|(?P<mention>(?<![\w@])@[A-Za-z][A-Za-z0-9_]{2,31}(?!\w))"
    r"|(?P<url>https?://[^\s<>\"]+)"
)


def _auto_entities(text: str) -> list[JSON]:
    """Entities a Telegram client/server attaches to plain user text."""
    entities = []
    for m in _AUTO_ENTITY_RE.finditer(text):
        kind = m.lastgroup or "url"
        offset = utf16_len(text[: m.start()])
        entities.append({"type": kind, "offset": offset, "length": utf16_len(m.group(0))})
    return entities


def _callback_datas(markup: Any) -> list[str]:
    if not isinstance(markup, dict):
        return []
    return [
        b["callback_data"]
        for row in markup.get("inline_keyboard", [])
        for b in row
        if isinstance(b, dict) and "callback_data" in b
    ]


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise ApiError(400, "Bad Request: can't parse inline keyboard button JSON object")
    if not isinstance(button.get("text"), str) or not button["text"]:
        raise ApiError(400, "Bad Request: inline keyboard button text must be non-empty")
    actions = [a for a in BUTTON_ACTIONS if a in button]
    if not actions:
        raise ApiError(400, ERR_TEXT_BUTTONS)
    if "callback_data" in button:
        data = button["callback_data"]
        if (
            not isinstance(data, str)
            or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
        ):
            raise ApiError(400, ERR_BUTTON_DATA)
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or _normalize_url(url) is None:
            raise ApiError(400, ERR_BUTTON_URL)


# --------------------------------------------------------------------------------------------
# Running outside a test's event loop
# --------------------------------------------------------------------------------------------
class FakeTelegramThread:
    """Runs a FakeTelegram on its own event loop in a daemon thread (for sync code).

    ``with FakeTelegramThread(token=...) as t: t.base_url; t.call(lambda s: s.user_message("hi"))``
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: FakeTelegram | None = None

    def __enter__(self) -> FakeTelegramThread:
        self._thread.start()

        async def boot() -> FakeTelegram:
            return await FakeTelegram(**self._kwargs).start()

        self.server = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.base_url

    def call(self, fn: Callable[[FakeTelegram], T], timeout: float = 10.0) -> T:
        """Run ``fn(server)`` on the server's loop (injection helpers are not thread-safe)."""
        assert self.server is not None
        server = self.server

        async def run() -> T:
            return fn(server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=timeout)

    def run(self, fn: Callable[[FakeTelegram], Awaitable[T]], timeout: float = 30.0) -> T:
        """Await ``fn(server)`` on the server's loop, e.g. ``t.run(lambda s: s.wait_for(...))``."""
        assert self.server is not None
        server = self.server

        async def run() -> T:
            return await fn(server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=timeout)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.fake_telegram",
        description=(
            "Fake Telegram Bot API on 127.0.0.1. Prints BASE_URL=... (and BASE_FILE_URL=...) "
            "first. Without --send it serves until --duration or SIGINT/SIGTERM. With --send it "
            "injects one user message once the bot connects, prints the bot's reply text and "
            "exits 0 (1: no reply, 2: bot never connected, 3: reply did not match --expect)."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default=DEFAULT_TOKEN)
    p.add_argument("--send", metavar="TEXT", help="user message to inject")
    p.add_argument("--user-id", type=int, default=1001)
    p.add_argument("--chat-type", default="private", choices=["private", "group", "supergroup"])
    p.add_argument("--chat-id", type=int, default=None)
    p.add_argument("--connect-timeout", type=float, default=60.0)
    p.add_argument("--reply-timeout", type=float, default=30.0)
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="after the first reply, wait this long for edits/more messages",
    )
    p.add_argument("--expect", metavar="REGEX", help="exit 3 unless the reply matches")
    p.add_argument("--duration", type=float, default=600.0, help="serve mode: max seconds")
    p.add_argument("--lenient-html", action="store_true", help="accept what tdlib tolerates")
    p.add_argument(
        "--fail-on-violation", action="store_true", help="exit 4 if the bot broke any Bot API rule"
    )
    return p


async def _cli(args: argparse.Namespace) -> int:
    server = FakeTelegram(
        token=args.token, host=args.host, port=args.port, strict_html=not args.lenient_html
    )
    async with server:
        print(f"BASE_URL={server.base_url}", flush=True)
        print(f"BASE_FILE_URL={server.base_file_url}", flush=True)
        code = 0
        if args.send is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
        else:
            code = await _cli_round_trip(server, args)
        print(server.dump(limit=60), file=sys.stderr)
        if code == 0 and args.fail_on_violation and server.violations:
            code = 4
        return code


async def _cli_round_trip(server: FakeTelegram, args: argparse.Namespace) -> int:
    try:
        await asyncio.wait_for(server.bot_connected.wait(), args.connect_timeout)
    except TimeoutError:
        print(f"bot did not connect within {args.connect_timeout}s", file=sys.stderr)
        return 2
    update = server.user_message(
        args.send, user_id=args.user_id, chat_type=args.chat_type, chat_id=args.chat_id
    )
    chat_id = _update_chat_id(update)
    try:
        await server.wait_for_reply(update, timeout=args.reply_timeout)
    except TimeoutError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    with contextlib.suppress(TimeoutError):
        await server.wait_idle(quiet=args.settle, timeout=args.reply_timeout)
    first = update["message"]["message_id"]
    replies = [m for m in server.bot_messages(chat_id or 0) if m["message_id"] > first]
    text = "\n\n".join(m.get("text", "") for m in replies)
    print(text, flush=True)
    if args.expect and not re.search(args.expect, text):
        print(f"reply does not match {args.expect!r}", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    return asyncio.run(_cli(args))


if __name__ == "__main__":
    sys.exit(main())
