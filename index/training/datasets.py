"""The question sets, their corpora, and the folds they are split into.

Folds are by *article*: every question about one article is in the same fold,
so a model is always measured on articles it never saw a question about. The
16 SQuAD articles and, apart, the 5 seed articles go round-robin (in name
order) into 4 folds; a question belongs to the article whose text holds its
answer. Real search questions (Natural Questions) are off-topic probes for a
corpus that does not contain their answers; each goes to fold ``line % 4``,
wherever it is asked, as do questions no article answers.

Questions of one SQuAD fold asked against an index *without* that fold's
articles are more probes, written in the very style of the answerable ones:
a model cannot tell them apart by how they are phrased, only by whether the
corpus answers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from index.evaluation import read_questions

FOLDS = 4

# kinds of question
ANSWERABLE = "answerable"
UNANSWERABLE = "unanswerable"  # SQuAD 2.0's, written to look answerable from the same articles
OFFTOPIC = "offtopic"  # real search questions whose answers the corpus does not hold
LEFT_OUT = "left-out"  # a question about an article that is not in the index


@dataclass(frozen=True)
class Item:
    """One question, asked against one corpus, in one fold."""

    question: str
    answers: tuple[str, ...]
    kind: str
    corpus: str  # a key of :class:`Sources` corpora
    source: str  # the set it comes from, for reporting
    fold: int
    article: str = ""  # the article it is about, when known


@dataclass(frozen=True)
class Sources:
    """Where the data lives: the shared evaluation folder and this repository."""

    shared_eval: Path
    repo: Path

    @property
    def squad_corpus(self) -> Path:
        return self.shared_eval / "squad-dev16" / "corpus"

    @property
    def seed_corpus(self) -> Path:
        return self.repo / "corpus"

    def corpora(self) -> dict[str, tuple[Path, list[Path]]]:
        """Corpus key → (folder, the files of it to index)."""
        squad = sorted(self.squad_corpus.glob("*.md"))
        seeds = sorted(p for p in self.seed_corpus.rglob("*") if p.is_file())
        out = {"squad": (self.squad_corpus, squad), "seeds": (self.seed_corpus, seeds)}
        folds = squad_folds(self.squad_corpus)
        for f in range(FOLDS):
            out[f"squad-without-{f}"] = (
                self.squad_corpus,
                [p for p in squad if folds[p.stem] != f],
            )
        return out


def squad_folds(corpus: Path) -> dict[str, int]:
    """Article name → fold, round-robin in name order."""
    names = sorted(p.stem for p in corpus.glob("*.md"))
    return {name: i % FOLDS for i, name in enumerate(names)}


def article_folds(corpus: Path) -> dict[str, tuple[int, str]]:
    """Each article file of ``corpus`` (relative path) → (fold, its lower-cased text)."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    return {
        str(p.relative_to(corpus)): (
            i % FOLDS,
            p.read_text(encoding="utf-8", errors="replace").lower(),
        )
        for i, p in enumerate(files)
    }


def squad_items(sources: Sources) -> list[Item]:
    """SQuAD dev16's questions, each with the article it is about.

    ``qa.jsonl`` keeps SQuAD's order, article after article; an answerable
    question's article is the one whose text holds its answer, and an
    unanswerable one belongs to the article of the questions around it.
    """
    texts = {
        p.stem: p.read_text(encoding="utf-8").lower() for p in sources.squad_corpus.glob("*.md")
    }
    folds = squad_folds(sources.squad_corpus)
    items: list[Item] = []
    current = ""
    for row in read_questions(sources.shared_eval / "squad-dev16" / "qa.jsonl"):
        answers = tuple(row.get("answers", []))
        if row.get("expect") != "abstain":
            holding = [n for n, t in texts.items() if any(a.lower() in t for a in answers)]
            if len(holding) == 1 or (holding and current not in holding):
                current = sorted(holding)[0]
        if not current:
            continue  # an unanswerable question before any answerable one: no article known
        kind = UNANSWERABLE if row.get("expect") == "abstain" else ANSWERABLE
        items.append(Item(row["q"], answers, kind, "squad", "squad", folds[current], current))
    return items


def left_out_items(squad: list[Item]) -> list[Item]:
    """Each SQuAD question asked against the index without its own fold's articles."""
    return [
        Item(
            i.question, (), LEFT_OUT, f"squad-without-{i.fold}", "squad-left-out", i.fold, i.article
        )
        for i in squad
    ]


def seed_items(sources: Sources, path: Path, source: str) -> list[Item]:
    """Questions on the seed articles, each in the fold of the article holding its answer."""
    articles = article_folds(sources.seed_corpus)
    items = []
    for line, row in enumerate(read_questions(path)):
        answers = tuple(row.get("answers", []))
        kind = UNANSWERABLE if row.get("expect") == "abstain" else ANSWERABLE
        holding = [
            name for name, (_, text) in articles.items() if any(a.lower() in text for a in answers)
        ]
        article = holding[0] if holding else ""
        fold = articles[article][0] if article else line % FOLDS
        items.append(Item(row["q"], answers, kind, "seeds", source, fold, article))
    return items


def offtopic_items(sources: Sources, corpus: str, folder_text: str) -> list[Item]:
    """Natural Questions whose answers ``folder_text`` does not hold: off-topic there."""
    items = []
    lowered = folder_text.lower()
    for line, row in enumerate(read_questions(sources.shared_eval / "nq-offtopic.jsonl")):
        if any(a.lower() in lowered for a in row["answers"]):
            continue
        items.append(Item(row["q"], (), OFFTOPIC, corpus, f"nq-{corpus}", line % FOLDS))
    return items


def all_items(sources: Sources) -> list[Item]:
    """Every question the models learn from or are measured on."""
    squad = squad_items(sources)
    squad_text = "\n".join(p.read_text(encoding="utf-8") for p in sources.squad_corpus.glob("*.md"))
    seed_text = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in sources.seed_corpus.rglob("*")
        if p.is_file()
    )
    return [
        *squad,
        *left_out_items(squad),
        *seed_items(sources, sources.shared_eval / "dev_qa.jsonl", "seeds-dev"),
        *offtopic_items(sources, "squad", squad_text),
        *offtopic_items(sources, "seeds", seed_text),
    ]


def holdout_items(sources: Sources) -> list[Item]:
    """Questions on the seed articles no model is ever trained on (``eval/holdout_qa.jsonl``)."""
    return seed_items(sources, sources.repo / "eval" / "holdout_qa.jsonl", "seeds-holdout")
