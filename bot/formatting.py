"""Answers → Telegram messages (HTML) and terminal text, within Telegram's limits.

Everything the bot shows is first built as :class:`Block` s of styled :class:`Run` s
(plain data, no markup), and only then rendered: as Telegram HTML with every piece
of text escaped, as plain text (the same visible characters, for when Telegram
rejects the HTML) or as terminal text. Because the visible text is known exactly,
:func:`pack` can keep each message within 4096 UTF-16 code units and 100 entities:
it splits between quotes, and splits a quote that is longer by itself between
sentences (or at whitespace), closing and reopening the tags on each part.

The bot's own words stay limited to labels, help and errors: a quote's text is
only ever the passage as the index returned it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from index import Context, Quote, Source

MAX_MESSAGE_UNITS = 4096  # telegram.constants.MessageLimit.MAX_TEXT_LENGTH, in UTF-16 units
MAX_ENTITIES = 100  # Telegram's limit of formatting entities per message
GROUP_SEPARATOR = "\n\n"
BLOCK_SEPARATOR = "\n"

_SENTENCE_CUT = re.compile(r"[.!?…;:][\"'”’)\]]*\s+")
_SPACE_CUT = re.compile(r"\s+")


def utf16_len(text: str) -> int:
    """Telegram measures text in UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Run:
    """A stretch of text with one style; ``url`` makes it a link."""

    text: str
    bold: bool = False
    italic: bool = False
    url: str | None = None

    @property
    def entities(self) -> int:
        return int(self.bold) + int(self.italic) + int(self.url is not None)


@dataclass(frozen=True)
class Block:
    """A paragraph: runs of text, optionally inside a ``<blockquote>``."""

    runs: tuple[Run, ...]
    quote: bool = False

    @property
    def text(self) -> str:
        return "".join(run.text for run in self.runs)

    @property
    def length(self) -> int:
        return utf16_len(self.text)

    @property
    def entities(self) -> int:
        return int(self.quote) + sum(run.entities for run in self.runs if run.text)


Group = tuple[Block, ...]  # blocks that belong together (a quote and its sources)


@dataclass(frozen=True)
class Message:
    """One Telegram message: blocks, each with the separator that precedes it."""

    parts: tuple[tuple[str, Block], ...]

    @property
    def length(self) -> int:
        return sum(utf16_len(sep) + block.length for sep, block in self.parts)

    @property
    def entities(self) -> int:
        return sum(block.entities for _, block in self.parts)

    def html(self) -> str:
        return "".join(sep + render_html(block) for sep, block in self.parts)

    def plain(self) -> str:
        """Exactly the visible text of :meth:`html`, without formatting."""
        return "".join(sep + block.text for sep, block in self.parts)

    def terminal(self, bold: tuple[str, str] = ("", "")) -> str:
        return "".join(sep + render_terminal(block, bold) for sep, block in self.parts)


# ----------------------------------------------------------------------------- rendering
def render_html(block: Block) -> str:
    """Telegram HTML for ``block``; all text and URLs are escaped."""
    out = []
    for run in block.runs:
        if not run.text:
            continue
        text = html.escape(run.text, quote=False)
        if run.italic:
            text = f"<i>{text}</i>"
        if run.bold:
            text = f"<b>{text}</b>"
        if run.url is not None:
            text = f'<a href="{html.escape(run.url, quote=True)}">{text}</a>'
        out.append(text)
    body = "".join(out)
    return f"<blockquote>{body}</blockquote>" if block.quote else body


def render_terminal(block: Block, bold: tuple[str, str] = ("", "")) -> str:
    """Plain text for a terminal: quotes prefixed with ``> ``, links followed by their URL."""
    out = []
    for run in block.runs:
        text = run.text
        if run.bold and bold[0]:
            text = f"{bold[0]}{text}{bold[1]}"
        if run.url is not None:
            text = f"{text} <{run.url}>"
        out.append(text)
    body = "".join(out)
    if block.quote:
        return "\n".join("> " + line for line in body.split("\n"))
    return body


# ----------------------------------------------------------------------------- packing
def pack(
    groups: Iterable[Group],
    *,
    limit: int = MAX_MESSAGE_UNITS,
    max_entities: int = MAX_ENTITIES,
) -> list[Message]:
    """Lay ``groups`` out as messages within ``limit`` UTF-16 units and ``max_entities``.

    A group is kept in one message when it fits; otherwise its blocks are placed one by
    one, and a block too long for any message is split by :func:`split_block`.
    """
    messages: list[Message] = []
    current: list[tuple[str, Block]] = []
    length = entities = 0

    def flush() -> None:
        nonlocal current, length, entities
        if current:
            messages.append(Message(tuple(current)))
        current, length, entities = [], 0, 0

    def fits(extra_len: int, extra_ent: int) -> bool:
        return length + extra_len <= limit and entities + extra_ent <= max_entities

    def add(sep: str, block: Block) -> None:
        nonlocal length, entities
        sep = sep if current else ""
        current.append((sep, block))
        length += utf16_len(sep) + block.length
        entities += block.entities

    for group in groups:
        blocks = [b for b in group if b.text.strip()]
        if not blocks:
            continue
        group_len = sum(b.length for b in blocks) + utf16_len(BLOCK_SEPARATOR) * (len(blocks) - 1)
        group_ent = sum(b.entities for b in blocks)
        lead = utf16_len(GROUP_SEPARATOR) if current else 0
        if not fits(lead + group_len, group_ent):
            flush()
        for i, block in enumerate(blocks):
            sep = BLOCK_SEPARATOR if i else GROUP_SEPARATOR
            if fits((utf16_len(sep) if current else 0) + block.length, block.entities):
                add(sep, block)
                continue
            flush()
            if block.length <= limit and block.entities <= max_entities:
                add(sep, block)
                continue
            parts = split_block(block, limit=limit, max_entities=max_entities)
            for part in parts[:-1]:
                messages.append(Message((("", part),)))
            add(sep, parts[-1])
    flush()
    return messages


def split_block(
    block: Block, *, limit: int = MAX_MESSAGE_UNITS, max_entities: int = MAX_ENTITIES
) -> list[Block]:
    """Split one block into blocks of at most ``limit`` units and ``max_entities`` each.

    Cuts fall after a sentence when one is near enough the end of the room, else at
    whitespace, and only as a last resort inside a word. Every part keeps the block's
    blockquote and each run's style, so the tags close and reopen on each part.
    """
    if limit < 2 or max_entities < int(block.quote) + 3:
        raise ValueError("limit too small to split into")
    parts: list[Block] = []
    runs: list[Run] = []
    length = entities = 0
    base_entities = int(block.quote)

    def close() -> None:
        nonlocal runs, length, entities
        if runs:
            parts.append(Block(tuple(runs), block.quote))
        runs, length, entities = [], 0, 0

    for run in block.runs:
        rest = run.text
        while rest:
            if runs and base_entities + entities + run.entities > max_entities:
                close()
                continue
            room = limit - length
            if utf16_len(rest) <= room:
                runs.append(replace(run, text=rest))
                length += utf16_len(rest)
                entities += run.entities
                break
            cut = cut_point(rest, room, fresh=not runs)
            if cut == 0:
                close()
                continue
            runs.append(replace(run, text=rest[:cut]))
            entities += run.entities
            rest = rest[cut:]
            close()
    close()
    # A part of only whitespace would be an empty message: fold it into its neighbour.
    kept = [p for p in parts if p.text.strip()]
    return kept or parts[:1]


def cut_point(text: str, room: int, *, fresh: bool) -> int:
    """Where to cut ``text`` so that ``text[:cut]`` fits ``room`` units (0: nothing fits well).

    ``fresh`` means the piece starts an empty part, so it must take something (a hard cut
    if there is no better place) and should fill at least a fair share of the room.
    """
    fit = prefix_fitting(text, room)
    if fit <= 0:
        return 0
    window = text[:fit]
    sentence = [m.end() for m in _SENTENCE_CUT.finditer(window)]
    space = [m.end() for m in _SPACE_CUT.finditer(window) if m.start() > 0]
    if not fresh:
        if sentence:
            return sentence[-1]
        return space[-1] if space else 0
    if sentence and sentence[-1] >= fit // 2:
        return sentence[-1]
    if space and space[-1] >= fit // 4:
        return space[-1]
    return fit


def prefix_fitting(text: str, room: int) -> int:
    """The largest ``i`` with ``utf16_len(text[:i]) <= room``."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > room:
            return i
    return len(text)


# ----------------------------------------------------------------------------- building
def safe_url(url: str | None) -> str | None:
    """``url`` if Telegram will keep it as a link (http/https with a real host), else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    if (
        parts.scheme.lower() not in ("http", "https")
        or "." not in host
        or any(c.isspace() for c in url)
    ):
        return None
    return url


def highlighted_runs(text: str, spans: Sequence[tuple[int, int]]) -> list[Run]:
    """``text`` as runs, with the characters inside ``spans`` in bold."""
    clean = sorted((max(0, a), min(len(text), b)) for a, b in spans if b > a)
    runs: list[Run] = []
    pos = 0
    for start, end in clean:
        start = max(start, pos)
        if end <= start:
            continue
        if start > pos:
            runs.append(Run(text[pos:start]))
        runs.append(Run(text[start:end], bold=True))
        pos = end
    if pos < len(text):
        runs.append(Run(text[pos:]))
    return runs


def source_block(source: Source, label: str = "— ") -> Block:
    """``label`` + title (a link when the article has a URL) + `` — publisher, date``."""
    runs = [Run(label)] if label else []
    runs.append(Run(source.title, url=safe_url(source.url)))
    tail = ", ".join(part for part in (source.publisher, source.date) if part)
    if tail:
        runs.append(Run(f" — {tail}"))
    return Block(tuple(runs))


def quote_group(quote: Quote, number: int | None = None) -> Group:
    """One quote: the passage in a blockquote, its answering sentence(s) bold, its sources."""
    label = f"[{number}] " if number is not None else "— "
    blocks = [Block(tuple(highlighted_runs(quote.text, quote.spans)), quote=True)]
    blocks += [source_block(source, label) for source in quote.sources]
    return tuple(blocks)


def answer_groups(quotes: Sequence[Quote], first_number: int | None = 1) -> list[Group]:
    """The groups of an answer page, numbered from ``first_number`` (None: a lone quote)."""
    return [
        quote_group(q, None if first_number is None else first_number + i)
        for i, q in enumerate(quotes)
    ]


def context_groups(context: Context) -> list[Group]:
    """The quoted passage (bold) among its neighbours, then the article's source."""
    label = Block((Run("Context — the quoted paragraph is in bold:", italic=True),))
    blocks = [
        Block((Run(text, bold=i == context.focus),), quote=True)
        for i, text in enumerate(context.passages)
    ]
    return [(label,), tuple(blocks), (source_block(context.source),)]


def text_groups(*paragraphs: str | Block) -> list[Group]:
    """The bot's own short texts (help, errors), one group per paragraph."""
    return [(p,) if isinstance(p, Block) else (Block((Run(p),)),) for p in paragraphs if p]


# ----------------------------------------------------------------------------- the bot's words
NOT_FOUND = (
    "I found no passage in the articles that answers this. "
    "See /sources for what the articles cover, and /help for how to ask."
)
EXPIRED_BUTTON = "This button has expired — please ask again."
PASSAGE_GONE = "That passage is no longer in the articles (they were updated) — please ask again."
NO_MORE = "There are no more quotes for this question."
APOLOGY = "Sorry — something went wrong while answering. Please try again in a moment."
NOT_ALLOWED = "Sorry, this bot is private: it only answers its invited users and chats."
ADMINS_ONLY = "Sorry, {command} is only for the bot's admins."
NON_TEXT = "I can only read text. Send your question as a text message, e.g. “{example}”."
EMPTY_ASK = "Put your question after the command, e.g. /ask {example}"
EMPTY_MENTION = "Put your question in the same message as my name, e.g. “@{username} {example}”."


def rate_limited_text(seconds: float) -> str:
    wait = max(1, round(seconds))
    return (
        "You are asking faster than I can keep up with. "
        f"Please wait about {wait} second{'s' if wait != 1 else ''} and ask again."
    )


def help_groups(
    examples: Sequence[str],
    username: str | None,
    *,
    admin: bool = False,
    terminal: bool = False,
) -> list[Group]:
    """/help: what the bot does, example questions drawn from the corpus, the commands."""
    intro = (
        "Ask me a question about the news articles I have read. I answer only with "
        "passages quoted word for word from them, each with its source — never with "
        "words of my own."
    )
    groups = text_groups(intro)
    if examples:
        lines = [Block((Run("For example, ask about:", bold=True),))]
        lines += [Block((Run(f"• {example}"),)) for example in examples]
        groups.append(tuple(lines))
    if terminal:
        usage = [
            "Type a question and press Enter. /more shows further quotes, /context N the "
            "paragraphs around quote N, quit (or Ctrl-D) leaves.",
        ]
    else:
        me = f"@{username}" if username else "the bot"
        usage = [
            "Under an answer, “More” shows further quotes and “Context” the paragraphs "
            "around a quote.",
            f"In a group: /ask your question, mention {me} in a message, or reply to one of "
            "my messages.",
            f"In any chat: type {me} and a question to pick a quote to send (inline mode).",
        ]
    groups.extend(text_groups(*usage))
    commands = [
        Block((Run("Commands:", bold=True),)),
        Block((Run("/sources — the articles I quote from"),)),
        Block((Run("/about — what this bot is"),)),
        Block((Run("/help — this message"),)),
    ]
    if not terminal:
        commands.insert(1, Block((Run("/ask question — ask (in groups)"),)))
    if admin:
        commands += [
            Block((Run("/reload — load a rebuilt index without restarting (admins)"),)),
            Block((Run("/stats — index and usage numbers (admins)"),)),
        ]
    groups.append(tuple(commands))
    return groups


def start_groups(examples: Sequence[str], username: str | None, *, admin: bool) -> list[Group]:
    hello = Block((Run("Hello! I answer questions by quoting news articles.", bold=True),))
    return [(hello,), *help_groups(examples, username, admin=admin)]


def sources_groups(sources: Sequence[Source]) -> list[Group]:
    """/sources: every article, with publisher and date, linked where it has a URL."""
    if not sources:
        return text_groups("No articles are indexed yet.")
    head = Block((Run(f"I quote from these {len(sources)} articles:", bold=True),))
    # One group: pack() keeps the list together and, if it is too long, splits between lines.
    return [(head,), tuple(source_block(source, "• ") for source in sources)]


def about_groups(articles: int, built_at: str) -> list[Group]:
    return text_groups(
        Block((Run("quotebot", bold=True),)),
        "I answer questions about a collection of news articles by quoting them verbatim, "
        "with their source: title, publisher and date, linked where the article has a URL. "
        "I never write text of my own about the articles; if no passage answers, I say so.",
        f"Articles: {articles}. Index built: {built_at}.",
        "See /help for how to ask and /sources for the articles.",
    )
