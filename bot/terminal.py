"""A chat in the terminal, for trying quotebot without a Telegram token.

It reads questions from stdin (a terminal or a pipe; piped questions are echoed
after a ``? `` as the prompt shows them on a terminal), asks the same index and
prints the same messages the bot would send — built by :mod:`bot.formatting`,
rendered as plain text — with the same /help, /sources and /about. ``/more``
shows the next quotes, ``/context N`` the paragraphs around quote N. It ends on
end of input or ``quit``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from bot.formatting import (
    NO_MORE,
    NOT_FOUND,
    PASSAGE_GONE,
    Group,
    about_groups,
    answer_groups,
    context_groups,
    help_groups,
    pack,
    sources_groups,
    text_groups,
)
from index import QuestionError, Quote, QuoteIndex

QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})
BOLD = ("\033[1m", "\033[0m")
# Without a terminal to draw bold (piped output, logs), the answering sentence
# is still marked: it is the point of the answer.
MARKED = ("**", "**")


class TerminalChat:
    """The conversation state: the last question's quotes, for /more and /context."""

    def __init__(
        self,
        index: QuoteIndex,
        out: TextIO,
        *,
        page_size: int = 3,
        pool_size: int = 12,
        context_radius: int = 1,
        examples: Sequence[str] = (),
        color: bool = False,
    ) -> None:
        self.index = index
        self.out = out
        self.page_size = page_size
        self.pool_size = pool_size
        self.context_radius = context_radius
        self.examples = list(examples)
        self.bold = BOLD if color else MARKED
        self.quotes: tuple[Quote, ...] = ()
        self.shown = 0

    def show(self, groups: Sequence[Group]) -> None:
        for message in pack(groups):
            print(message.terminal(self.bold), file=self.out)
            print(file=self.out)
        self.out.flush()

    def handle(self, line: str) -> bool:
        """Answer one line of input; False when the user wants to leave."""
        text = line.strip()
        if not text:
            return True
        if text.lower() in QUIT_WORDS:
            return False
        command, _, arg = text.partition(" ")
        command = command.lower()
        if command in ("/help", "/start"):
            self.show(help_groups(self.examples, None, terminal=True))
        elif command == "/sources":
            self.show(sources_groups(self.index.articles()))
        elif command == "/about":
            stats = self.index.stats()
            self.show(about_groups(stats.articles, stats.built_at))
        elif command == "/more":
            self.more()
        elif command == "/context":
            self.context(arg)
        elif command == "/ask":
            self.ask(arg)
        elif command.startswith("/"):
            self.show(text_groups("I don't know that command. See /help."))
        else:
            self.ask(text)
        return True

    def ask(self, question: str) -> None:
        try:
            answer = self.index.answer(question, self.pool_size)
        except QuestionError as err:
            self.show(text_groups(str(err)))
            return
        if not answer.found:
            self.quotes, self.shown = (), 0
            self.show(text_groups(NOT_FOUND))
            return
        self.quotes, self.shown = answer.quotes, 0
        self.more()

    def more(self) -> None:
        page = self.quotes[self.shown : self.shown + self.page_size]
        if not page:
            self.show(text_groups(NO_MORE))
            return
        first = self.shown + 1 if len(self.quotes) > 1 else None
        self.show(answer_groups(page, first))
        self.shown += len(page)
        if self.shown < len(self.quotes):
            self.show(text_groups("(/more for further quotes, /context N for a quote's context)"))

    def context(self, arg: str) -> None:
        arg = arg.strip() or "1"
        if not arg.isdigit() or not 1 <= int(arg) <= self.shown:
            self.show(text_groups("Give the number of a quote shown above, e.g. /context 1."))
            return
        found = self.index.context(self.quotes[int(arg) - 1].ref, self.context_radius)
        self.show(context_groups(found) if found else text_groups(PASSAGE_GONE))


def run_chat(
    index: QuoteIndex,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    *,
    page_size: int = 3,
    context_radius: int = 1,
    examples: Sequence[str] = (),
) -> int:
    """Chat until end of input or ``quit``; returns the exit code (0)."""
    interactive = stdin.isatty() and stdout.isatty()
    chat = TerminalChat(
        index,
        stdout,
        page_size=page_size,
        pool_size=min(50, max(10, 4 * page_size)),
        context_radius=context_radius,
        examples=examples,
        color=interactive,
    )
    stats = index.stats()
    print(
        f"quotebot — terminal chat ({stats.articles} articles). Ask a question; "
        "/help for help, quit or Ctrl-D to leave.",
        file=stdout,
    )
    print(file=stdout)
    stdout.flush()
    while True:
        if interactive:
            try:
                line = input("? ")  # line editing and history where readline is available
            except (EOFError, KeyboardInterrupt):
                break
        else:
            line = stdin.readline()
            if not line:
                break
            if line.strip():
                # What a terminal shows after the prompt, so a transcript reads as a chat.
                print(f"? {line.strip()}", file=stdout, flush=True)
        if not chat.handle(line):
            break
    if interactive:
        print(file=stdout)
    return 0
