"""The webhook server: Telegram POSTs updates here; ``/healthz`` says whether the bot is up.

PTB's built-in webhook server cannot serve extra routes, so — as in PTB's
"customwebhookbot" examples — the Application runs with ``updater=None`` and this
small server feeds it: each POST is checked for the secret Telegram echoes in
``X-Telegram-Bot-Api-Secret-Token`` (403 otherwise), parsed into an
:class:`~telegram.Update` and put on ``application.update_queue`` — which journals
it (:mod:`bot.delivery`) — and only then answered 200, Telegram's "received". It uses tornado,
the server PTB's ``[webhooks]`` extra already installs, so there is no new dependency.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

import tornado.httpserver
import tornado.web
from telegram import Update
from telegram.ext import Application

from bot.delivery import JournalUnavailable
from bot.service import QuoteService

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY_BYTES = 2 * 1024 * 1024  # an update is a few KB; refuse anything absurd


class UpdateHandler(tornado.web.RequestHandler):
    """POST <webhook path>: one update from Telegram."""

    def initialize(self, ptb_app: Application[Any, Any, Any, Any, Any, Any], secret: str) -> None:
        self.ptb_app = ptb_app
        self.secret = secret

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning(
                "webhook POST with a wrong or missing secret from %s", self.request.remote_ip
            )
            self.set_status(403)
            self.finish({"ok": False, "error": "forbidden"})
            return
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.ptb_app.bot)
        except Exception as err:  # malformed JSON or not an update
            log.warning("webhook POST with an unreadable update: %s", err)
            self.set_status(400)
            self.finish({"ok": False, "error": "bad update"})
            return
        try:
            await self.ptb_app.update_queue.put(update)  # journaled before the 200
        except JournalUnavailable:  # logged where it happened; Telegram will send it again
            self.set_status(503)
            self.finish({"ok": False, "error": "update not journaled"})
            return
        self.finish({"ok": True})


class HealthHandler(tornado.web.RequestHandler):
    """GET /healthz: 200 with the index build while the bot runs, 503 otherwise."""

    def initialize(
        self, ptb_app: Application[Any, Any, Any, Any, Any, Any], service: QuoteService
    ) -> None:
        self.ptb_app = ptb_app
        self.service = service

    def get(self) -> None:
        running = self.ptb_app.running
        self.set_status(200 if running else 503)
        self.finish(
            {
                "status": "ok" if running else "stopping",
                "build_id": self.service.build_id,
                "articles": len(self.service.articles()),
            }
        )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    # Refused updates are logged (with the reason) by the handlers: one line per event.
    level = logging.DEBUG if status < 500 else logging.WARNING
    log.log(
        level,
        "%s %s %s %.1fms",
        status,
        handler.request.method,
        handler.request.path,
        1000 * handler.request.request_time(),
    )


class WebhookServer:
    """Serves the webhook path and /healthz on ``listen:port`` until :meth:`stop`."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        service: QuoteService,
        *,
        listen: str,
        port: int,
        path: str,
        secret: str,
    ) -> None:
        self.listen = listen
        self.port = port
        self.path = path
        routes: list[Any] = [
            (r"/healthz", HealthHandler, {"ptb_app": application, "service": service}),
            (
                re.escape(path.rstrip("/")) + r"/?",
                UpdateHandler,
                {"ptb_app": application, "secret": secret},
            ),
        ]
        self._app = tornado.web.Application(routes, log_function=_log_request)
        self._server: tornado.httpserver.HTTPServer | None = None

    async def start(self) -> None:
        self._server = tornado.httpserver.HTTPServer(self._app, max_body_size=MAX_BODY_BYTES)
        self._server.listen(self.port, address=self.listen)
        log.info(
            "webhook server listening on %s:%d%s (and /healthz)", self.listen, self.port, self.path
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        await self._server.close_all_connections()
        self._server = None
