"""Tests for the fake Telegram Bot API: it must be as strict as Telegram, or bot tests lie.

Driven both by python-telegram-bot itself (so PTB's real request encoding is exercised) and by
raw aiohttp (so exact status codes and descriptions are checked).  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import telegram
from aiohttp import web
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.helpers import escape_markdown

try:
    from tests.conftest_telegram import FAKE_TELEGRAM_TOKEN, fake_telegram, fake_telegram_bot
    from tests.fake_telegram import FakeTelegram, FakeTelegramThread, parse_html, utf16_len
except ImportError:  # pragma: no cover - tests/ imported as a rootdir-less directory
    from conftest_telegram import (  # type: ignore[no-redef]
        FAKE_TELEGRAM_TOKEN,
        fake_telegram,
        fake_telegram_bot,
    )
    from fake_telegram import (  # type: ignore[no-redef]
        FakeTelegram,
        FakeTelegramThread,
        parse_html,
        utf16_len,
    )

__all__ = ["fake_telegram", "fake_telegram_bot"]  # re-exported fixtures used below

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAT = 1001  # the default private chat created by user_message()


@pytest_asyncio.fixture
async def server(fake_telegram: FakeTelegram) -> FakeTelegram:
    """The started fake, with the default private chat known (as after a user's /start)."""
    fake_telegram.chat(user_id=CHAT)
    return fake_telegram


@pytest_asyncio.fixture
async def bot(server: FakeTelegram, fake_telegram_bot: telegram.Bot) -> telegram.Bot:
    return fake_telegram_bot


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def api(
    http: aiohttp.ClientSession,
    server: FakeTelegram,
    method: str,
    *,
    form: bool = False,
    **params: Any,
) -> tuple[int, Any]:
    """POST a Bot API call: JSON body by default, or form-encoded the way PTB does it."""
    url = f"{server.api_url}/{method}"
    if form:
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        resp_ctx = http.post(url, data=data)
    else:
        resp_ctx = http.post(url, json=params)
    async with resp_ctx as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


# --------------------------------------------------------------------------------- basics
async def test_get_me_through_ptb(bot: telegram.Bot, server: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.username == "quote_test_bot"
    assert me.id == 123456
    assert me.is_bot and me.supports_inline_queries and me.can_join_groups
    assert me.can_read_all_group_messages is False
    assert server.calls("getMe")[0].ok


async def test_wrong_token_unknown_method_and_bad_path(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{server.base_url}999:WRONG/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    status, body = await api(http, server, "sendPhotoOfCat")
    assert (status, body["description"]) == (404, "Not Found")
    async with http.get(f"http://127.0.0.1:{server.port}/nothing/here") as resp:
        assert resp.status == 404
    with pytest.raises(InvalidToken):
        async with telegram.Bot("999:WRONG", base_url=server.base_url) as other:
            await other.get_me()
    assert len(server.violations) == 3  # 401, 404 unknown method, 401 from PTB


async def test_method_names_are_case_insensitive_and_json_or_form(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "x"}]]}
    status, body = await api(
        http, server, "sendmessage", chat_id=CHAT, text="hi", reply_markup=markup
    )
    assert status == 200 and body["result"]["reply_markup"] == markup
    # JSON body with the nested object JSON-encoded as a string, as some clients do
    status, body = await api(
        http, server, "sendMessage", chat_id=str(CHAT), text="hi", reply_markup=json.dumps(markup)
    )
    assert status == 200 and body["result"]["reply_markup"] == markup
    status, body = await api(
        http, server, "sendMessage", form=True, chat_id=CHAT, text="123", reply_markup=markup
    )
    assert status == 200 and body["result"]["text"] == "123"
    call = server.calls("sendMessage")[-1]
    assert call.params["chat_id"] == CHAT and call.params["reply_markup"] == markup


async def test_chat_not_found(bot: telegram.Bot, server: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "hello?")
    assert server.violations[-1].description == "Bad Request: chat not found"


# --------------------------------------------------------------------------------- HTML
@pytest.mark.parametrize(
    ("html", "visible", "types"),
    [
        ("<b>b</b><strong>s</strong>", "bs", ["bold", "bold"]),
        (
            "<i>i</i><em>e</em><u>u</u><ins>n</ins>",
            "ieun",
            ["italic", "italic", "underline", "underline"],
        ),
        ("<s>s</s><strike>t</strike><del>d</del>", "std", ["strikethrough"] * 3),
        ('<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>', "xy", ["spoiler"] * 2),
        ('<a href="https://example.com/?a=1&amp;b=2">link</a>', "link", ["text_link"]),
        ("<code>x</code>", "x", ["code"]),
        ('<pre><code class="language-python">print(1)</code></pre>', "print(1)", ["pre"]),
        ("<blockquote>q</blockquote>", "q", ["blockquote"]),
        ("<blockquote expandable>q</blockquote>", "q", ["expandable_blockquote"]),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", ["custom_emoji"]),
        ("a &lt; b &gt; c &amp; d &quot;e&quot; &#65;&#x42;", 'a < b > c & d "e" AB', []),
        ("<B>upper</B>", "upper", ["bold"]),
        ("<b>bold <i>both</i></b>", "bold both", ["bold", "italic"]),
    ],
)
async def test_html_accepted(
    server: FakeTelegram, http: aiohttp.ClientSession, html: str, visible: str, types: list[str]
) -> None:
    status, body = await api(
        http, server, "sendMessage", chat_id=CHAT, text=html, parse_mode="HTML"
    )
    assert status == 200, body
    assert body["result"]["text"] == visible
    assert [e["type"] for e in body["result"].get("entities", [])] == types


@pytest.mark.parametrize(
    ("html", "description"),
    [
        ("hi <br> there", 'Unsupported start tag "br" at byte offset 3'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("x <b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("a &foo; b", 'Unsupported HTML entity "&foo;" at byte offset 2 (strict)'),
        ("fish & chips", 'Unescaped "&" at byte offset 5; use "&amp;" (strict)'),
        ("a > b", 'Unescaped ">" at byte offset 2; use "&gt;" (strict)'),
        ("<a>no href</a>", 'Tag "a" must have attribute "href" at byte offset 0 (strict)'),
        ("é <foo>", 'Unsupported start tag "foo" at byte offset 3'),  # byte, not char, offset
    ],
)
async def test_html_rejected(
    server: FakeTelegram, http: aiohttp.ClientSession, html: str, description: str
) -> None:
    status, body = await api(
        http, server, "sendMessage", chat_id=CHAT, text=html, parse_mode="HTML"
    )
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: can't parse entities: " + description,
    }
    assert server.violations and server.violations[-1].params["text"] == html


async def test_html_rejection_reaches_ptb_as_bad_request(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: unsupported start tag"):
        await bot.send_message(CHAT, "<p>para</p>", parse_mode="HTML")
    msg = await bot.send_message(CHAT, "<b>ok</b> &amp; fine", parse_mode="HTML")
    assert msg.text == "ok & fine" and msg.entities[0].type == "bold"
    assert msg.text_html == "<b>ok</b> &amp; fine"


def test_parse_html_lenient_mode_matches_tdlib() -> None:
    """Telegram itself tolerates a bare & or >; strict mode is the fake's extra safety net."""
    assert parse_html("fish & chips > fries &foo;", strict=False)[0] == "fish & chips > fries &foo;"
    assert parse_html("<a>no href</a>", strict=False) == ("no href", [])


async def test_markdown_v2_reserved_characters(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await bot.send_message(CHAT, "*Done* in 1.5s", parse_mode="MarkdownV2")
    msg = await bot.send_message(
        CHAT, "*Done* in " + escape_markdown("1.5s", version=2), parse_mode="MarkdownV2"
    )
    assert msg.text == "Done in 1.5s" and msg.entities[0].type == "bold"


async def test_replies_must_target_existing_messages(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    question = server.user_message("question?")["message"]
    reply = await bot.send_message(
        CHAT, "answer", reply_parameters=ReplyParameters(question["message_id"], chat_id=CHAT)
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "question?"
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(CHAT, "answer", reply_parameters=ReplyParameters(9999))


# --------------------------------------------------------------------------------- limits
async def test_length_is_measured_in_utf16_units_of_visible_text(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    assert utf16_len("😀") == 2
    ok_cases = [
        "a" * 4096,
        "😀" * 2048,
        "<b>" + "a" * 4096 + "</b>",  # tags do not count
        "&lt;" * 4096,  # entities count as one character each
    ]
    for text in ok_cases:
        status, body = await api(
            http, server, "sendMessage", chat_id=CHAT, text=text, parse_mode="HTML"
        )
        assert status == 200, (text[:20], body)
    for text in ["a" * 4097, "😀" * 2048 + "a", "é" * 4097]:
        status, body = await api(http, server, "sendMessage", chat_id=CHAT, text=text)
        assert (status, body["description"]) == (400, "Bad Request: message is too long")
    for text in ["", "   \n ", "<b></b>"]:
        status, body = await api(
            http, server, "sendMessage", chat_id=CHAT, text=text, parse_mode="HTML"
        )
        assert (status, body["description"]) == (400, "Bad Request: message text is empty")


async def test_entity_count_limit(server: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, _ = await api(
        http, server, "sendMessage", chat_id=CHAT, text="<b>x</b> " * 100, parse_mode="HTML"
    )
    assert status == 200
    status, body = await api(
        http, server, "sendMessage", chat_id=CHAT, text="<b>x</b> " * 101, parse_mode="HTML"
    )
    assert (status, body["description"]) == (400, "Bad Request: too many entities")


async def test_callback_data_is_limited_to_64_bytes(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    for data in ["x" * 64, "é" * 32]:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data=data)]])
        await bot.send_message(CHAT, "ok", reply_markup=markup)
    for data in ["x" * 65, "é" * 33]:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data=data)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(CHAT, "too long", reply_markup=markup)
    assert [v.description for v in server.violations] == ["Bad Request: BUTTON_DATA_INVALID"] * 2


async def test_url_buttons_need_a_valid_url(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    bad = {"inline_keyboard": [[{"text": "go", "url": "not a url"}]]}
    status, body = await api(http, server, "sendMessage", chat_id=CHAT, text="x", reply_markup=bad)
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_URL_INVALID")
    bare = {"inline_keyboard": [[{"text": "no action"}]]}
    status, body = await api(http, server, "sendMessage", chat_id=CHAT, text="x", reply_markup=bare)
    assert body["description"] == "Bad Request: text buttons are unallowed in the inline keyboard"


def _articles(n: int, text: str = "quote", parse_mode: str | None = None) -> list[Any]:
    return [
        InlineQueryResultArticle(
            id=str(i),
            title=f"r{i}",
            input_message_content=InputTextMessageContent(text, parse_mode=parse_mode),
        )
        for i in range(n)
    ]


async def test_inline_results_limit_and_validation(bot: telegram.Bot, server: FakeTelegram) -> None:
    qid = server.inline_query("climate")["inline_query"]["id"]
    with pytest.raises(BadRequest, match=r"(?i)results_too_much"):
        await bot.answer_inline_query(qid, _articles(51))
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.answer_inline_query(qid, _articles(1, "<x>", parse_mode="HTML"))
    assert await bot.answer_inline_query(qid, _articles(50, "<b>q</b>", parse_mode="HTML"))
    assert len(server.inline_answers[qid]["results"]) == 50
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):  # answered already
        await bot.answer_inline_query(qid, _articles(1))
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_inline_query("123", _articles(1))


async def test_inline_result_ids_must_be_unique(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    update = server.inline_query("q")
    article = {
        "type": "article",
        "id": "1",
        "title": "t",
        "input_message_content": {"message_text": "m"},
    }
    status, body = await api(
        http,
        server,
        "answerInlineQuery",
        form=True,
        inline_query_id=update["inline_query"]["id"],
        results=[article, article],
    )
    assert (status, body["description"]) == (400, "Bad Request: RESULT_ID_DUPLICATE")


async def test_answer_callback_query_rules(bot: telegram.Bot, server: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("more", callback_data="more")]])
    msg = await bot.send_message(CHAT, "pick", reply_markup=markup)
    with pytest.raises(ValueError, match="no button"):
        server.press_button(msg.to_dict(), "missing")
    update = server.press_button(msg.to_dict(), "more")
    query = update["callback_query"]
    assert query["message"]["message_id"] == msg.message_id and query["data"] == "more"
    with pytest.raises(BadRequest, match=r"(?i)message_too_long"):
        await bot.answer_callback_query(query["id"], text="x" * 201)
    assert await bot.answer_callback_query(query["id"], text="x" * 200)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query["id"])
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("never-sent")


async def test_edit_message_text_rules(bot: telegram.Bot, server: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="d")]])
    msg = await bot.send_message(CHAT, "v1", reply_markup=markup)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("v1", CHAT, msg.message_id, reply_markup=markup)
    edited = await bot.edit_message_text("<i>v2</i>", CHAT, msg.message_id, parse_mode="HTML")
    assert isinstance(edited, telegram.Message)
    assert edited.text == "v2" and edited.reply_markup is None  # no markup in edit removes it
    assert server.bot_messages(CHAT)[-1]["text"] == "v2"
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", CHAT, 9999)
    user_update = server.user_message("mine")
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", CHAT, user_update["message"]["message_id"])
    assert [m["text"] for m in server.sent_messages(CHAT)] == ["v1", "v2"]


# --------------------------------------------------------------------------------- faults
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_is_seen_as_retry_after(bot: telegram.Bot, server: FakeTelegram) -> None:
    server.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(CHAT, "x")
    assert "3" in str(info.value)
    call = server.calls("sendMessage")[-1]
    assert call.injected and call.status == 429
    assert call.response["parameters"] == {"retry_after": 3}
    assert call.response["description"] == "Too Many Requests: retry after 3"
    await bot.send_message(CHAT, "after the wait")  # only one failure was programmed
    assert server.violations == []


async def test_502_is_seen_as_network_error(bot: telegram.Bot, server: FakeTelegram) -> None:
    server.fail_next(None, status=502, times=3)
    for _ in range(3):
        with pytest.raises(NetworkError, match="Bad Gateway") as info:
            await bot.send_chat_action(CHAT, "typing")
        assert not isinstance(info.value, BadRequest)
    assert await bot.send_chat_action(CHAT, "typing")
    assert [c.status for c in server.calls("sendChatAction")] == [502, 502, 502, 200]
    assert "<title>502 Bad Gateway</title>" in server.calls("sendChatAction")[0].response


async def test_dropped_connection_and_delay(bot: telegram.Bot, server: FakeTelegram) -> None:
    server.fail_next("sendMessage", status=0)
    with pytest.raises(NetworkError):
        await bot.send_message(CHAT, "x")
    server.delay_next("sendMessage", 0.3)
    started = time.monotonic()
    await bot.send_message(CHAT, "slow")
    assert time.monotonic() - started >= 0.3
    assert server.violations == []


async def test_unfiltered_fault_spares_get_updates(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    server.fail_next(None, status=500)
    status, _ = await api(http, server, "getUpdates", timeout=0)
    assert status == 200
    status, body = await api(http, server, "getMe")
    assert (status, body["description"]) == (500, "Internal Server Error")


async def test_random_faults_follow_the_seed_and_have_no_effect(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    async def statuses(fake: FakeTelegram, sender: telegram.Bot) -> list[int]:
        fake.random_faults(7, rate_429=0.1, rate_5xx=0.2, rate_drop=0.1, methods=["sendMessage"])
        for i in range(40):
            with contextlib.suppress(telegram.error.TelegramError):
                await sender.send_message(CHAT, f"m{i}")
        fake.clear_faults()
        return [c.status for c in fake.calls("sendMessage")]

    first = await statuses(server, bot)
    assert {429, 0} <= set(first) and {500, 502, 503, 504} & set(first)
    async with FakeTelegram(token=FAKE_TELEGRAM_TOKEN) as other:
        other.chat(user_id=CHAT)
        other_bot = telegram.Bot(FAKE_TELEGRAM_TOKEN, base_url=other.base_url)
        async with other_bot:
            assert await statuses(other, other_bot) == first  # same seed, same faults
    # A failed request never reached the API: only the successful ones were sent.
    assert len(server.sent_messages(CHAT)) == first.count(200)
    assert server.violations == []


async def test_outage_fails_every_method_until_it_ends(
    server: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    server.outage(0.5)
    assert server.in_outage
    for method in ("getMe", "getUpdates", "sendMessage"):
        status, _ = await api(http, server, method, chat_id=CHAT, text="x", timeout=0)
        assert status == 502
    await asyncio.sleep(0.6)
    assert not server.in_outage
    status, _ = await api(http, server, "getMe")
    assert status == 200


async def test_held_request_abandoned_by_its_client_has_no_effect(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    server.hold("sendMessage")
    with pytest.raises(telegram.error.TimedOut):
        await bot.send_message(CHAT, "held", read_timeout=0.3)
    await server.wait_for(lambda c: c.status == 499, 5, include_failed=True)
    assert server.holding == 0
    server.release()
    assert server.sent_messages(CHAT) == []
    await bot.send_message(CHAT, "after release")
    assert [m["text"] for m in server.sent_messages(CHAT)] == ["after release"]


async def test_updates_stay_pending_until_a_later_offset_confirms_them(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    first = server.user_message("one")["update_id"]
    second = server.user_message("two")["update_id"]
    assert server.pending_update_ids == [first, second]
    assert len(await bot.get_updates(timeout=0)) == 2  # fetched is not confirmed
    assert server.pending_update_ids == [first, second]
    assert len(await bot.get_updates(offset=second, timeout=0)) == 1
    assert server.pending_update_ids == [second]
    assert await bot.get_updates(offset=second + 1, timeout=0) == ()
    assert server.pending_update_ids == []


# --------------------------------------------------------------------------------- polling
async def test_long_poll_returns_injected_update_quickly(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    assert not poll.done()
    started = time.monotonic()
    sent = server.user_message("/start@quote_test_bot hello @someone https://example.com")
    updates = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 1.0
    assert [u.update_id for u in updates] == [sent["update_id"]]
    message = updates[0].message
    assert message is not None and message.chat.id == CHAT
    assert [e.type for e in message.entities] == ["bot_command", "mention", "url"]
    assert message.parse_entities()[message.entities[0]] == "/start@quote_test_bot"
    # not confirmed yet: returned again; confirmed with offset: gone
    assert len(await bot.get_updates(timeout=0)) == 1
    assert await bot.get_updates(offset=sent["update_id"] + 1, timeout=0) == ()


async def test_long_poll_times_out_empty(bot: telegram.Bot, server: FakeTelegram) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 2.5


async def test_second_poller_terminates_the_first_with_409(
    server: FakeTelegram, fake_telegram_bot: telegram.Bot
) -> None:
    async with telegram.Bot(FAKE_TELEGRAM_TOKEN, base_url=server.base_url) as second:
        first_poll = asyncio.create_task(fake_telegram_bot.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        second_poll = asyncio.create_task(second.get_updates(timeout=5))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getupdates request"):
            await asyncio.wait_for(first_poll, 2)
        update = server.user_message("hello")
        updates = await asyncio.wait_for(second_poll, 2)
        assert [u.update_id for u in updates] == [update["update_id"]]
    assert [v.status for v in server.violations] == [409]


async def test_group_privacy_mode_withholds_plain_messages(
    bot: telegram.Bot, server: FakeTelegram
) -> None:
    plain = server.user_message("what about rates?", chat_type="group")
    command = server.user_message("/ask rates", chat_type="group")
    other_bot = server.user_message("/ask@other_bot rates", chat_type="group")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [command["update_id"]]
    assert [u["update_id"] for u, _ in server.withheld] == [
        plain["update_id"],
        other_bot["update_id"],
    ]
    reply = await bot.send_message(command["message"]["chat"]["id"], "answer")
    follow_up = server.user_message(
        "thanks", chat_type="group", reply_to_bot_message_id=reply.message_id
    )
    updates = await bot.get_updates(offset=command["update_id"] + 1, timeout=0)
    assert [u.update_id for u in updates] == [follow_up["update_id"]]
    sticker = server.user_sticker(chat_type="private")
    updates = await bot.get_updates(offset=follow_up["update_id"] + 1, timeout=0)
    assert updates[0].message.sticker.emoji == sticker["message"]["sticker"]["emoji"]
    assert updates[0].message.text is None


# --------------------------------------------------------------------------------- webhook
@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[str, list[Any]]]:
    """A minimal webhook endpoint that checks the secret like a correct bot must."""
    received: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != "s3cret":
            return web.Response(status=403)
        received.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()


async def test_webhook_delivery_with_secret(
    bot: telegram.Bot, server: FakeTelegram, receiver: tuple[str, list[Any]]
) -> None:
    url, received = receiver
    early = server.user_message("queued before the webhook")
    assert await bot.set_webhook(url, secret_token="s3cret")
    info = await bot.get_webhook_info()
    assert info.url == url
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    late = server.user_message("after")
    assert (await server.wait_for_delivery(early)).status == 200
    assert (await server.wait_for_delivery(late)).status == 200
    assert [u["update_id"] for u in received] == [early["update_id"], late["update_id"]]
    wrong = await server.deliver_webhook(secret="wrong")
    missing = await server.deliver_webhook(secret=None)
    assert (wrong.status, missing.status) == (403, 403)
    assert (await server.deliver_webhook()).status == 200
    assert (await bot.get_webhook_info()).pending_update_count == 0
    assert await bot.delete_webhook()
    pending = server.user_message("polling again")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [pending["update_id"]]


async def test_webhook_must_be_loopback(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)bad webhook"):
        await bot.set_webhook("https://example.com/hook")


# --------------------------------------------------------------------------------- PTB apps
async def test_ptb_application_polling_round_trip(server: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="more")]])
        await update.message.reply_html("<b>Hi</b> &amp; welcome", reply_markup=markup)

    async def more(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text("<i>more</i>", parse_mode="HTML")

    app = (
        ApplicationBuilder()
        .token(server.token)
        .base_url(server.base_url)
        .base_file_url(server.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(more))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            update = server.user_message("/start")
            reply = await server.wait_for_reply(update)
            assert reply.result["text"] == "Hi & welcome"
            pressed = server.press_button(reply, "more")
            edit = await server.wait_for_reply(pressed)
            assert edit.method == "editMessageText" and edit.result["text"] == "more"
            await server.wait_for_reply(pressed, methods=["answerCallbackQuery"])
        finally:
            await app.updater.stop()
            await app.stop()
    server.assert_no_violations()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ptb_webhook_mode_rejects_wrong_secret(server: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("pong")

    app = ApplicationBuilder().token(server.token).base_url(server.base_url).build()
    app.add_handler(CommandHandler("start", start))
    port = _free_port()
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="tg",
            webhook_url=f"http://127.0.0.1:{port}/tg",
            secret_token="s3cret",
        )
        try:
            update = server.user_message("/start")
            reply = await server.wait_for_reply(update)
            assert reply.result["text"] == "pong"
            assert (await server.wait_for_delivery(update)).status == 200
            bad = await server.deliver_webhook(
                server.user_message("/start", queue=False), secret="wrong"
            )
            assert bad.status == 403
        finally:
            await app.updater.stop()
            await app.stop()
    server.assert_no_violations()


# --------------------------------------------------------------------------------- runners
def test_threaded_server_for_sync_code() -> None:
    with FakeTelegramThread(token=FAKE_TELEGRAM_TOKEN) as fake:
        update = fake.call(lambda s: s.user_message("hi"))
        req = urllib.request.Request(
            f"{fake.base_url}{FAKE_TELEGRAM_TOKEN}/getUpdates", data=b"timeout=0", method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = json.loads(resp.read())
        assert [u["update_id"] for u in body["result"]] == [update["update_id"]]


async def _cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fake_telegram",
        "--token",
        FAKE_TELEGRAM_TOKEN,
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


async def test_cli_round_trip_with_a_bot() -> None:
    proc = await _cli(
        "--send",
        "ping",
        "--connect-timeout",
        "10",
        "--reply-timeout",
        "10",
        "--settle",
        "0.2",
        "--expect",
        "pong",
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert first.startswith("BASE_URL=http://127.0.0.1:")
        async with telegram.Bot(FAKE_TELEGRAM_TOKEN, base_url=first.split("=", 1)[1]) as bot:
            updates: tuple[Update, ...] = ()
            deadline = time.monotonic() + 10
            while not updates and time.monotonic() < deadline:
                updates = await bot.get_updates(timeout=1)
            assert updates and updates[0].message is not None
            await updates[0].message.reply_text(f"pong: {updates[0].message.text}")
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "pong: ping" in out.decode()


async def test_cli_fails_when_no_bot_connects() -> None:
    proc = await _cli("--send", "ping", "--connect-timeout", "0.3")
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2, err.decode()
