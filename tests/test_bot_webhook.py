"""The real bot in webhook mode: the fake Telegram POSTs updates to the bot's own server.

The bot registers its webhook (with a secret) at start; the fake then delivers each
update by HTTP POST with ``X-Telegram-Bot-Api-Secret-Token``, as Telegram does. A POST
with a wrong or missing secret must be refused with 403, and ``/healthz`` must answer.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.bot_fixtures import (
    REPLY_TIMEOUT,
    VOTES_QUESTION,
    VOTES_TEXT,
    callback_datas,
    clean_env,
    free_port,
    running_bot,
    visible,
)
from tests.fake_telegram import FakeTelegram

SECRET = "webhook-Secret_42"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


def _webhook(port: int, **extra: object) -> dict[str, object]:
    return {
        "webhook_url": f"http://127.0.0.1:{port}/telegram/hook",
        "webhook_listen": "127.0.0.1",
        "webhook_port": port,
        **extra,
    }


async def test_webhook_mode_answers_and_checks_the_secret(quote_index):
    port = free_port()
    async with (
        FakeTelegram() as server,
        running_bot(server, quote_index, **_webhook(port, webhook_secret=SECRET)),
    ):
        registered = server.calls("setWebhook", ok=True)
        assert registered and registered[-1].params["secret_token"] == SECRET
        assert not server.calls("getUpdates"), "webhook mode must not poll"

        update = server.user_message(VOTES_QUESTION)
        delivery = await server.wait_for_delivery(update, timeout=REPLY_TIMEOUT)
        assert delivery.status == 200 and delivery.secret == SECRET
        reply = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        assert VOTES_TEXT in visible(reply)
        assert "<blockquote>" in reply.params["text"]

        # Buttons work through the webhook too.
        ctx = next(d for d in callback_datas(reply) if d.startswith("ctx:"))
        press = server.press_button(reply, ctx)
        shown = await server.wait_for_reply(press, timeout=REPLY_TIMEOUT)
        assert VOTES_TEXT in visible(shown)

        inline = server.inline_query(VOTES_QUESTION)
        answered = await server.wait_for_reply(inline, timeout=REPLY_TIMEOUT)
        assert answered.params["results"]

        before = len(server.calls("sendMessage"))
        forged = server.user_message(VOTES_QUESTION, queue=False)
        wrong = await server.deliver_webhook(forged, secret="not-the-secret")
        assert wrong.status == 403
        missing = await server.deliver_webhook(forged, secret=None)
        assert missing.status == 403
        await server.wait_idle()
        assert len(server.calls("sendMessage")) == before, "a forged update was answered"

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200
            body = await resp.json()
        assert body["status"] == "ok"
        assert body["build_id"] == quote_index.build_id
        assert body["articles"] == len(quote_index.articles())
        await server.wait_idle()
        assert not [c for c in server.violations], server.dump()


async def test_webhook_without_configured_secret_uses_a_random_one(quote_index):
    port = free_port()
    async with FakeTelegram() as server, running_bot(server, quote_index, **_webhook(port)):
        secret = server.calls("setWebhook", ok=True)[-1].params["secret_token"]
        assert secret and len(secret) >= 32
        update = server.user_message(VOTES_QUESTION)
        reply = await server.wait_for_reply(update, timeout=REPLY_TIMEOUT)
        assert VOTES_TEXT in visible(reply)
        forged = await server.deliver_webhook(server.user_message("hi", queue=False), secret=None)
        assert forged.status == 403

    # After a clean stop the webhook server is gone.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(
                f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=3)
            ):
                pass
