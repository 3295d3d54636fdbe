"""The real bot on small custom corpora: answers longer than a Telegram message, article
text full of HTML's special characters, and an index rebuilt and reloaded while
questions keep coming. Each corpus is really built (FAISS + BM25 on disk) with the
session's embedding model.
"""

from __future__ import annotations

import asyncio
import html
import shutil
from pathlib import Path

import pytest

from index import QuoteIndex
from index.build import build_index
from index.embeddings import Embedder
from tests.bot_fixtures import (
    MANY_QUESTION,
    REPLY_TIMEOUT,
    VOTES_QUESTION,
    VOTES_TEXT,
    ask,
    build_custom_index,
    callback_datas,
    check_message_rules,
    clean_env,
    converse,
    copy_index,
    running_bot,
    sent_since,
    visible,
)
from tests.conftest import write_article
from tests.fake_telegram import FakeTelegram, parse_html, utf16_len

ROOT = Path(__file__).resolve().parent.parent
ITEMS = [f"overcrowding in prison block {i} of the northern district" for i in range(120)]
LONG_SENTENCE = "The resolution lists these concerns about the prisons: " + ", ".join(ITEMS) + "."
URL = "https://example.org/news?id=1&lang=en"
MARKUP_TITLE = "Markup & <Symbols> in the Committee's Report"
MARKUP_TEXT = (
    'The committee said the ratio was 3 < 5 && 7 > 2, and wrote "<b>bold</b>" & <i>tags</i> '
    "literally in its report on the ratio."
)
TULIP_QUESTION = "How many visitors did the Keukenhof tulip festival draw?"
TULIP_TEXT = "The Keukenhof tulip festival drew 1.4 million visitors this spring"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


@pytest.fixture(scope="module")
def custom_index(tmp_path_factory, embedder: Embedder):
    corpus = tmp_path_factory.mktemp("custom") / "corpus"
    write_article(
        corpus,
        "prisons.md",
        LONG_SENTENCE
        + "\n\nThe prisons are also short of doctors, and the resolution asks for medical care."
        + "\n\nVisitors to the prisons reported cold cells and little food during the winter.",
        title="Prison conditions listed in the resolution",
        publisher="Example Monitor",
        date="2024-02-03",
    )
    write_article(
        corpus,
        "markup.md",
        MARKUP_TEXT + "\n\nThe weather in Geneva was mild during the committee's meeting.",
        title=MARKUP_TITLE,
        publisher="R&D <Weekly>",
        date="2024-03-04",
        url=URL,
    )
    index_dir = corpus.parent / "index"
    return build_custom_index(corpus, index_dir, embedder, min_confidence=0.0)


async def test_answer_longer_than_a_message_is_split_validly(custom_index):
    async with FakeTelegram() as server, running_bot(server, custom_index, top_k=5):
        question = "Which concerns about the prisons does the resolution list?"
        messages = await converse(server, question)
        assert len(messages) >= 2, "a 6000-character passage cannot fit one message"
        for call in messages:
            check_message_rules(call)
            assert utf16_len(visible(call)) <= 4096
        texts = [visible(c) for c in messages]
        assert texts[0].lstrip("[1] ").startswith("The resolution lists these concerns")
        # The long quote arrives whole, in order, across its parts.
        joined = "".join(texts)
        assert all(item in joined for item in ITEMS)
        assert joined.index(ITEMS[0]) < joined.index(ITEMS[60]) < joined.index(ITEMS[119])
        # Each part is still a quote: the blockquote is reopened in every message.
        for call in messages:
            assert any(e["type"] == "blockquote" for e in call.result.get("entities", []))
        # Buttons only under the last message of the answer.
        assert not any(callback_datas(c) for c in messages[:-1])
        assert callback_datas(messages[-1])
        assert "Prison conditions listed in the resolution — Example Monitor, 2024-02-03" in joined
        server.assert_no_violations()


async def test_html_special_characters_in_articles_are_escaped(custom_index):
    async with FakeTelegram() as server, running_bot(server, custom_index):
        reply = await ask(server, "What ratio did the committee give in its report?")
        shown = visible(reply)
        assert MARKUP_TEXT in shown  # exactly as in the article, tags and all, as text
        raw = reply.params["text"]
        assert "&lt;b&gt;bold&lt;/b&gt;" in raw and "3 &lt; 5 &amp;&amp; 7 &gt; 2" in raw
        assert f"{MARKUP_TITLE} — R&D <Weekly>, 2024-03-04" in shown
        links = [e for e in reply.result["entities"] if e["type"] == "text_link"]
        assert [e["url"] for e in links] == [URL]
        assert parse_html(raw)[0] == shown

        # The same text through inline mode and the Context button.
        inline = server.inline_query("What ratio did the committee give in its report?")
        answered = await server.wait_for_reply(inline, timeout=REPLY_TIMEOUT)
        content = answered.params["results"][0]["input_message_content"]["message_text"]
        assert MARKUP_TEXT in parse_html(content)[0]
        assert html.unescape(content).count(MARKUP_TEXT) == 1
        ctx = next(d for d in callback_datas(reply) if d.startswith("ctx:"))
        press = server.press_button(reply, ctx)
        shown_ctx = await server.wait_for_reply(press, timeout=REPLY_TIMEOUT)
        assert MARKUP_TEXT in visible(shown_ctx)
        server.assert_no_violations()


async def test_reload_while_questions_flow(seed_index_dir, embedder, tmp_path):
    index_dir = copy_index(seed_index_dir, tmp_path / "index")
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    index = QuoteIndex(index_dir, embedder=embedder)
    async with (
        FakeTelegram() as server,
        running_bot(server, index, index_dir, admins="1001", top_k=1) as runner,
    ):
        before = await ask(server, TULIP_QUESTION)
        assert "I found no passage" in visible(before)
        paged = await ask(server, MANY_QUESTION)
        more = next(d for d in callback_datas(paged) if d.startswith("more:"))

        # An editor adds an article and rebuilds the index while the bot runs.
        write_article(
            corpus,
            "tulips.md",
            f"{TULIP_TEXT}, the organisers said on Monday.\n\n"
            "The gardens open every year in March and close in May.",
            title="Tulip season",
            publisher="Garden News",
            date="2024-05-20",
        )
        await asyncio.to_thread(build_index, corpus, index_dir, embedder=embedder, progress=False)

        mark = server.mark()
        asked = [server.user_message(VOTES_QUESTION, user_id=6000 + i) for i in range(4)]
        reload = server.user_message("/reload")
        asked += [server.user_message(VOTES_QUESTION, user_id=6100 + i) for i in range(4)]
        for update in asked:
            reply = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
            assert VOTES_TEXT in visible(reply)
        await server.wait_for(
            lambda c: c.method == "sendMessage" and c.ok and "Index reloaded" in c.result["text"],
            REPLY_TIMEOUT,
            since=mark,
        )
        await server.wait_idle()
        new_build = runner.service.build_id
        assert new_build != index.build_id
        done = [c for c in sent_since(server, mark, 1001) if "Index reloaded" in visible(c)]
        assert new_build in visible(done[0])
        assert reload["message"]["text"] == "/reload"

        after = await ask(server, TULIP_QUESTION)
        assert TULIP_TEXT in visible(after)
        assert "Tulip season — Garden News, 2024-05-20" in visible(after)

        # A More button from before the reload asks its question again on the new index.
        mark = server.mark()
        press = server.press_button(paged, more)
        page = await server.wait_for("sendMessage", REPLY_TIMEOUT, since=mark)
        assert "[2]" in visible(page)
        assert not server.callback_answers[press["callback_query"]["id"]].get("text")

        stats = await ask(server, "/stats")
        assert new_build in visible(stats) and "reloads 1" in visible(stats)
        server.assert_no_violations()
