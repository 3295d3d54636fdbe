"""Unit tests of the bot's parts that need no Telegram: formatting and splitting, callback
data, limits, access, settings, log redaction, the terminal chat and the service.

Formatting is checked with the fake server's own HTML parser (a port of Telegram's), so
"valid" means what Telegram would accept, not what this code thinks it wrote.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil

import pytest

from bot import __main__ as cli
from bot.access import Access
from bot.formatting import (
    MAX_MESSAGE_UNITS,
    Block,
    Run,
    about_groups,
    answer_groups,
    help_groups,
    pack,
    quote_group,
    sources_groups,
    split_block,
    utf16_len,
)
from bot.keyboards import (
    AnswerCache,
    AnswerRecord,
    ContextRequest,
    MoreRequest,
    answer_keyboard,
    decode,
    encode_context,
    encode_more,
    has_more,
    without_more,
)
from bot.logs import OneLineFormatter, RedactingFilter
from bot.ratelimit import SlidingWindowLimiter
from bot.service import QuoteService
from bot.settings import BotSettings, settings_table
from bot.terminal import TerminalChat, run_chat
from index import Quote, QuoteIndex, Source
from tests.bot_fixtures import (
    MANY_QUESTION,
    VOTES_QUESTION,
    VOTES_TEXT,
    clean_env,
    copy_index,
    free_port,
)
from tests.fake_telegram import FakeTelegramThread, parse_html

SOURCE = Source("Votes & <Vetoes>", "The Daily > Post", "2024-05-01", None, "a.md")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


def quote(text: str, spans=((0, 0),), sources=(SOURCE,), ref="abcdef0123:0") -> Quote:
    spans = tuple((a, b) for a, b in spans if b > a)
    return Quote(text, tuple(text[a:b] for a, b in spans), spans, 1.0, sources, ref)


def parsed(message) -> tuple[str, list[dict]]:
    return parse_html(message.html())


# ----------------------------------------------------------------------------- formatting
def test_article_text_is_escaped_and_highlight_is_bold():
    text = "Intro. The vote was 85 > 35 & the margin < 50, <b>not a tag</b>. Outro."
    start = text.index("The vote")
    end = text.index(". Outro") + 1
    (message,) = pack(answer_groups([quote(text, [(start, end)])], None))
    shown, entities = parsed(message)
    assert shown.startswith(text)  # verbatim, every character visible as written
    assert "Votes & <Vetoes> — The Daily > Post, 2024-05-01" in shown
    bold = [e for e in entities if e["type"] == "bold"]
    assert [shown[e["offset"] : e["offset"] + e["length"]] for e in bold] == [text[start:end]]
    assert [e["type"] for e in entities].count("blockquote") == 1
    assert message.plain() == shown
    assert "&lt;b&gt;" in message.html() and "&amp;" in message.html()


def test_source_links_only_to_real_web_urls():
    linked = Source("Title", None, None, 'https://example.org/a?x=1&y="2"', "a.md")
    (message,) = pack([quote_group(quote("Text.", sources=(linked,)), 1)])
    shown, entities = parsed(message)
    links = [e for e in entities if e["type"] == "text_link"]
    assert links and links[0]["url"] == 'https://example.org/a?x=1&y="2"'
    assert "[1] Title" in shown
    for bad in ("javascript:alert(1)", "ftp://x.org/f", "http://localhost/x", "not a url"):
        source = Source("Title", None, None, bad, "a.md")
        (message,) = pack([quote_group(quote("Text.", sources=(source,)))])
        assert "<a " not in message.html()


def test_several_sources_are_all_named():
    other = Source("Same passage elsewhere", "Other Publisher", None, None, "b.md")
    (message,) = pack([quote_group(quote("Shared text.", sources=(SOURCE, other)), 2)])
    shown, _ = parsed(message)
    assert "[2] Votes & <Vetoes> — The Daily > Post, 2024-05-01" in shown
    assert "[2] Same passage elsewhere — Other Publisher" in shown


def test_long_answer_splits_between_quotes():
    quotes = [quote(f"Quote {i}. " + "word " * 300, [(0, 8)], ref=f"r{i}") for i in range(6)]
    messages = pack(answer_groups(quotes, 1))
    assert len(messages) >= 2
    for message in messages:
        shown, entities = parsed(message)
        assert utf16_len(shown) <= MAX_MESSAGE_UNITS and len(entities) <= 100
        # A quote that fits in a message is never cut: it comes whole with its source.
        assert shown.count("[") == shown.count("Quote ")


def test_quote_longer_than_a_message_splits_between_sentences_with_tags_reopened():
    sentences = [
        f"Sentence number {i} says something rather long about the vote. " for i in range(150)
    ]
    text = "".join(sentences).strip()
    assert utf16_len(text) > 2 * MAX_MESSAGE_UNITS
    start = text.index("Sentence number 50 ")
    end = text.index("Sentence number 80 ")  # a highlight that crosses a cut
    messages = pack(answer_groups([quote(text, [(start, end)])], None))
    assert len(messages) >= 3
    pieces = []
    for message in messages:
        shown, entities = parsed(message)
        assert utf16_len(shown) <= MAX_MESSAGE_UNITS
        assert entities[0]["type"] == "blockquote" and entities[0]["offset"] == 0
        pieces.append(shown)
    body = "".join(p.split("\n— ")[0] for p in pieces)
    assert body == text  # nothing lost, nothing added
    for piece in pieces[:-1]:
        assert piece.endswith(". ")  # cut after a sentence, not inside one
    # The bold highlight is closed at the end of one part and reopened in the next.
    bold_parts = [m for m in messages if "<b>" in m.html()]
    assert len(bold_parts) >= 2
    assert "Votes & <Vetoes>" in pieces[-1]


def test_text_without_spaces_is_cut_hard_and_emoji_counted_in_utf16():
    for text in ("x" * 10_000, "😀" * 5000, "ab😀" * 2000):
        parts = split_block(Block((Run(text, bold=True),), quote=True))
        assert "".join(p.text for p in parts) == text
        for part in parts:
            assert 0 < part.length <= MAX_MESSAGE_UNITS
            shown, _ = parse_html(pack([(part,)])[0].html())
            assert shown == part.text


def test_many_highlights_stay_within_the_entity_limit():
    words = [f"w{i:03d}" for i in range(300)]
    text = " ".join(words)
    spans = []
    pos = 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    messages = pack(answer_groups([quote(text, spans)], None))
    assert len(messages) >= 2
    for message in messages:
        _, entities = parsed(message)
        assert len(entities) <= 100


def test_bot_texts_are_valid_html():
    sources = [SOURCE, Source("T2", None, "2020-01-01", "https://e.org/2", "b.md")]
    for groups in (
        help_groups(["Example topic & more"], "quote_test_bot", admin=True),
        help_groups([], None, terminal=True),
        sources_groups(sources),
        sources_groups([]),
        about_groups(5, "2024-01-01T00:00:00Z"),
    ):
        for message in pack(groups):
            shown, _ = parsed(message)
            assert shown == message.plain()
    shown, _ = parsed(pack(sources_groups(sources))[0])
    assert "• Votes & <Vetoes> — The Daily > Post, 2024-05-01" in shown


def test_long_source_list_splits_between_lines():
    many = [Source(f"Article {i} " + "t" * 100, "Pub", "2020", None, f"{i}.md") for i in range(80)]
    messages = pack(sources_groups(many))
    assert len(messages) >= 2
    for message in messages:
        shown, _ = parsed(message)
        assert utf16_len(shown) <= MAX_MESSAGE_UNITS
        assert all(line.startswith(("• Article", "I quote")) for line in shown.split("\n") if line)


# ----------------------------------------------------------------------------- keyboards
def test_callback_data_round_trips_within_64_bytes():
    ref = "0123456789:" + "9" * 13  # 24 characters, the longest ref the index makes
    assert decode(encode_context(ref)) == ContextRequest(ref)
    assert decode(encode_more("AbC_-123", 12)) == MoreRequest("AbC_-123", 12)
    assert len(encode_context(ref).encode()) <= 64
    for junk in (None, "", "ctx:", "more:", "more:tok", "more:tok:x", "other"):
        assert decode(junk) is None
    with pytest.raises(ValueError):
        encode_context("x" * 70)


def test_answer_cache_is_a_bounded_lru():
    cache = AnswerCache(max_size=2)
    tokens = [cache.put(AnswerRecord(f"q{i}", "b")) for i in range(2)]
    assert cache.get(tokens[0]) is not None  # now most recent
    third = cache.put(AnswerRecord("q2", "b"))
    assert cache.get(tokens[1]) is None and cache.get(tokens[0]) and cache.get(third)
    assert all(len(t) <= 12 for t in tokens)


def test_keyboard_has_context_per_quote_and_more():
    quotes = [quote("A.", ref="r1"), quote("B.", ref="r2")]
    markup = answer_keyboard(quotes, 3, encode_more("tok", 5))
    labels = [b.text for row in markup.inline_keyboard for b in row]
    assert labels == ["Context 3", "Context 4", "More ▸"]
    assert has_more(markup) and not has_more(without_more(markup))
    single = answer_keyboard([quote("A.", ref="r1")], None, None)
    assert [b.text for row in single.inline_keyboard for b in row] == ["Context"]


# ----------------------------------------------------------------------------- limits, access
def test_sliding_window_rate_limit():
    now = [0.0]
    limiter = SlidingWindowLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.hit(1) == 0 and limiter.hit(1) == 0
    wait = limiter.hit(1)
    assert 59 < wait <= 60
    assert limiter.should_tell(1, wait) and not limiter.should_tell(1, wait)
    assert limiter.hit(2) == 0  # others are not affected
    now[0] = 60.5
    assert limiter.hit(1) == 0
    assert SlidingWindowLimiter(0).hit(1) == 0  # 0 disables


def test_access_rules():
    assert Access().allows(1, 2) and Access().allows(None, None)
    users = Access(allowed_users=frozenset({1}), admins=frozenset({9}))
    assert users.allows(1, -100) and users.allows(9, None) and not users.allows(2, 2)
    chats = Access(allowed_chats=frozenset({-100}))
    assert chats.allows(5, -100) and not chats.allows(5, 5) and not chats.allows(5, None)
    assert users.is_admin(9) and not users.is_admin(1) and not users.is_admin(None)


# ----------------------------------------------------------------------------- settings, logs
def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abcdefghijkl")
    monkeypatch.setenv("QUOTEBOT_ALLOWED_CHATS", "-1001, 42 ,")
    monkeypatch.setenv("QUOTEBOT_ADMINS", "7")
    monkeypatch.setenv("QUOTEBOT_WEBHOOK_URL", "https://bot.example.org/hook")
    settings = BotSettings(_env_file=None)
    assert settings.token == "123:abcdefghijkl"
    assert "abcdefghijkl" not in repr(settings)
    assert settings.allowed_chats == {-1001, 42} and settings.admins == {7}
    assert settings.webhook_path == "/hook"
    assert settings.base_file_url == "https://api.telegram.org/file/bot"
    assert settings.model_for_index() is None
    assert BotSettings(_env_file=None, telegram_bot_token="  ").token is None
    with pytest.raises(ValueError):
        BotSettings(_env_file=None, webhook_secret="has spaces!")
    with pytest.raises(ValueError):
        BotSettings(_env_file=None, allowed_users="1,x")
    assert "| `QUOTEBOT_RATE_LIMIT_PER_MINUTE` | `10` |" in settings_table()


def test_main_prints_settings_and_rejects_bad_settings(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert cli.main(["--settings"]) == 0
    assert "| `TELEGRAM_BOT_TOKEN` |" in capsys.readouterr().out
    monkeypatch.setenv("QUOTEBOT_WEBHOOK_PORT", "not-a-port")
    assert cli.main([]) == 2
    assert "QUOTEBOT_WEBHOOK_PORT" in capsys.readouterr().err


def test_corrupt_or_missing_index_is_reported_without_traceback(tmp_path, caplog, capsys):
    (tmp_path / "manifest.json").write_text("{broken", encoding="utf-8")
    settings = BotSettings(_env_file=None, telegram_bot_token="1:abcdefghijk", index_dir=tmp_path)
    with caplog.at_level(logging.ERROR):
        assert cli.run_bot(settings) == 1
    assert "cannot load the index" in caplog.text and "unreadable" in caplog.text
    missing = BotSettings(_env_file=None, index_dir=tmp_path / "none")
    assert cli.run_terminal(missing) == 1
    assert "no index found" in capsys.readouterr().err


def test_log_redaction_covers_messages_arguments_and_tracebacks():
    token = "123456:AAEsecretPART_xyz"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter([token, None, "hook-secret"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("POST https://api.telegram.org/bot%s/getMe", token)
        logger.warning("secret half AAEsecretPART_xyz and hook-secret")
        try:
            raise RuntimeError(f"failed calling https://x/bot{token}/sendMessage")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "AAEsecretPART_xyz" not in out and "hook-secret" not in out
    assert out.count("[REDACTED]") >= 4
    assert len(out.strip().splitlines()) == 3  # the traceback folded onto its event's line


# ----------------------------------------------------------------------------- terminal chat
def test_terminal_chat_commands_and_quit(quote_index):
    out = io.StringIO()
    code = run_chat(
        quote_index,
        io.StringIO(
            f"/more\n/context 1\n{VOTES_QUESTION}\n{MANY_QUESTION}\n/context 9\n/context 1\n"
            "/about\n"
            "/nope\nquit\nnever read\n"
        ),
        out,
        page_size=1,
    )
    text = out.getvalue()
    assert code == 0
    assert "There are no more quotes" in text  # /more before any question
    assert "Give the number of a quote" in text
    assert "> **" + VOTES_TEXT in text  # the answering sentence is marked without ANSI
    assert "/more for further quotes" in text
    assert "Context — the quoted paragraph" in text
    assert "I don't know that command" in text
    assert "never read" not in text


def test_terminal_chat_reports_bad_questions(quote_index):
    chat = TerminalChat(quote_index, io.StringIO())
    assert chat.handle("") and chat.handle("   ")
    chat.handle("x" * 1200)
    assert "too long" in chat.out.getvalue()
    assert chat.handle("EXIT") is False


# ----------------------------------------------------------------------------- service
async def test_service_reload_keeps_serving_when_the_new_index_is_broken(
    seed_index_dir, quote_index, tmp_path
):
    index_dir = copy_index(seed_index_dir, tmp_path / "index")
    index = QuoteIndex(index_dir, embedder=quote_index.embedder)
    service = QuoteService(index)
    await service.refresh_examples()
    assert service.examples and all(len(e) <= 100 for e in service.examples)

    ok = await service.reload()
    assert ok.ok and ok.articles == 5 and ok.new_build == quote_index.build_id
    assert service.index is not index
    assert service.index.embedder is index.embedder  # the model was not loaded again

    shutil.rmtree(index_dir)
    failed = await service.reload()
    assert not failed.ok and "no index found" in (failed.error or "")
    answer = await service.answer(VOTES_QUESTION, 3)
    assert answer.found

    results = await asyncio.gather(*(service.answer(VOTES_QUESTION, 3) for _ in range(4)))
    assert all(r.found for r in results)


def test_refused_token_and_unreachable_telegram_exit_clearly(seed_index_dir, caplog):
    with FakeTelegramThread() as fake:
        wrong = BotSettings(
            _env_file=None,
            telegram_bot_token="123456:WRONG-token-value",
            telegram_base_url=fake.base_url,
            index_dir=seed_index_dir,
            journal=None,
        )
        with caplog.at_level(logging.ERROR):
            assert cli.run_bot(wrong) == 1
        assert "refused the bot token" in caplog.text
        assert "WRONG-token-value" not in caplog.text.replace("[REDACTED]", "")
    caplog.clear()
    unreachable = BotSettings(
        _env_file=None,
        telegram_bot_token="123456:some-token-value",
        telegram_base_url=f"http://127.0.0.1:{free_port()}/bot",
        index_dir=seed_index_dir,
        journal=None,
        network_retries=1,
        network_retry_delay=0.1,
    )
    with caplog.at_level(logging.ERROR):
        assert cli.run_bot(unreachable) == 1
    assert "cannot reach Telegram" in caplog.text
