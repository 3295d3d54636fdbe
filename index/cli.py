"""``python -m index``: build the index, ask it questions, inspect and measure it."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from index.settings import IndexSettings, SettingsError

app = typer.Typer(
    help=(
        "Build and query quotebot's article index. Answers are verbatim quotes from the "
        "articles, with their sources, or 'not found'.\n\n"
        "Defaults come from QUOTEBOT_CORPUS_DIR, QUOTEBOT_INDEX_DIR and QUOTEBOT_MODEL "
        "(or a .env file), so the bot and this CLI agree."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each option names its variable in --help (show_envvar). IndexSettings reads the same
# variables, and the .env file, and gives the defaults when neither is set; --help shows
# those defaults from it.
_DEFAULTS = {name: str(f.default) for name, f in IndexSettings.model_fields.items()}
CorpusOpt = Annotated[
    Path | None,
    typer.Option(
        "--corpus",
        envvar="QUOTEBOT_CORPUS_DIR",
        show_envvar=True,
        show_default=_DEFAULTS["corpus_dir"],
        help="Folder of article files and .jsonl archives, or one such file.",
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        envvar="QUOTEBOT_INDEX_DIR",
        show_envvar=True,
        show_default=_DEFAULTS["index_dir"],
        help="Index folder.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="QUOTEBOT_MODEL",
        show_envvar=True,
        show_default=_DEFAULTS["model"],
        help="sentence-transformers model name or path.",
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings() -> IndexSettings:
    """The settings, or exit 2 with one line naming the bad variable and what it accepts."""
    try:
        return IndexSettings.load()
    except SettingsError as err:
        raise _fail(str(err), 2) from None


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries(verbose)


@app.command()
def build(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail if any corpus file cannot be read.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    if_changed: Annotated[
        bool,
        typer.Option(
            "--if-changed",
            help="Do nothing when the index already holds exactly these files with this model.",
        ),
    ] = False,
) -> None:
    """Build the index from the corpus (only new or changed articles are embedded again)."""
    from tqdm import tqdm

    from index.build import EmptyCorpusError, StrictBuildError, build_index, is_up_to_date
    from index.embeddings import ModelLoadError
    from index.store import IndexLoadError

    settings = _settings()
    corpus_dir = corpus or settings.corpus_dir
    index_dir = index or settings.index_dir
    if if_changed and is_up_to_date(corpus_dir, index_dir, model or settings.model):
        typer.echo(f"Index at {index_dir} is up to date with {corpus_dir}; nothing to do.")
        return

    def report_skip(skipped) -> None:
        # Once per file or line, as it is met, above the progress bar.
        with tqdm.external_write_mode(file=sys.stderr):
            message = f"skipped {skipped.where}: {skipped.reason}"
            typer.secho(message, err=True, fg=typer.colors.YELLOW)

    try:
        report = build_index(
            corpus_dir,
            index_dir,
            model or settings.model,
            strict=strict,
            progress=progress,
            on_stage=lambda msg: typer.echo(msg, err=True),
            on_skip=report_skip,
        )
    except (
        StrictBuildError,
        EmptyCorpusError,
        FileNotFoundError,
        ModelLoadError,
        IndexLoadError,
    ) as err:
        raise _fail(_with_command(str(err), index)) from None
    skipped = f"; {len(report.skipped)} skipped (listed above)" if report.skipped else ""
    typer.echo(
        f"Indexed {report.articles} article(s), {report.passages} passage(s) "
        f"({report.embedded_articles} embedded, {report.reused_articles} reused) "
        f"into {index_dir} in {report.seconds:.1f}s{skipped}."
    )


@app.command()
def search(
    question: Annotated[
        str | None,
        typer.Argument(help="The question. Without it, questions are read from stdin, one a line."),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many quotes at most.")] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per question, one per line.")
    ] = False,
    index: IndexOpt = None,
    model: ModelOpt = None,
) -> None:
    """Answer a question with verbatim quotes (or 'not found')."""
    from index.engine import QuestionError

    engine = _load(index, model)
    if question is None and sys.stdin.isatty():
        typer.echo("Type a question and press Enter, one a line; Ctrl-D to finish.", err=True)
    questions = [question] if question is not None else (line for line in sys.stdin)
    for text in questions:
        if question is None and not text.strip():
            continue
        try:
            answer = engine.answer(text, k=k)
        except QuestionError as err:
            if as_json:
                refused = {"question": text.strip(), "found": False, "answers": []}
                typer.echo(json.dumps({**refused, "error": str(err)}, ensure_ascii=False))
            else:
                typer.secho(str(err), err=True, fg=typer.colors.YELLOW)
            continue
        if as_json:
            # The same keys on every line: "error" is null unless the question was refused.
            typer.echo(json.dumps({**answer.to_json(), "error": None}, ensure_ascii=False))
        else:
            typer.echo(_plain(answer))


@app.command()
def stats(index: IndexOpt = None, model: ModelOpt = None) -> None:
    """Show what the index holds: articles, passages, model, size, build time."""
    from index.store import IndexLoadError, index_size_bytes, load_index

    settings = _settings()
    index_dir = index or settings.index_dir
    try:
        stored = load_index(index_dir)
        size = index_size_bytes(index_dir)
    except IndexLoadError as err:
        raise _fail(_with_command(str(err), index)) from None
    m = stored.manifest
    rows = [
        ("index", str(index_dir)),
        ("articles", str(m.articles)),
        ("passages", str(m.passages)),
        ("sentences", str(m.sentences)),
        ("model", f"{m.model} ({m.dimension} dimensions)"),
        ("size", f"{size / 1024:.1f} KiB"),
        ("built", f"{m.built_at} in {m.build_seconds:.1f}s"),
        ("build id", m.build_id),
        ("skipped files", str(len(m.skipped))),
        ("segments", ", ".join(_segment_summary(stored))),
    ]
    for name, value in rows:
        typer.echo(f"{name:<14}{value}")


def _segment_summary(stored) -> list[str]:
    return [f"{len(s.passages):,} passages ({s.dense.name} search)" for s in stored.segments]


@app.command()
def verify(index: IndexOpt = None) -> None:
    """Hash every file of the index and compare with its manifest.

    Loading hashes only the files whose size, times or inode changed since they were
    last found intact; this reads every byte, as after a disk error.
    """
    from index.store import IndexLoadError, read_manifest, verify_build

    settings = _settings()
    index_dir = index or settings.index_dir
    try:
        manifest = read_manifest(index_dir)
        verify_build(index_dir, manifest, full=True)
    except IndexLoadError as err:
        raise _fail(_with_command(str(err), index)) from None
    size = sum(int(entry[0]) for entry in manifest.checksums.values())
    typer.echo(
        f"index at {index_dir} is intact: {len(manifest.checksums)} files, "
        f"{size / 2**20:,.1f} MiB hashed"
    )


@app.command("eval")
def evaluate_command(
    file: Annotated[Path, typer.Argument(help="JSONL: q, answers, optional expect: abstain.")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    show_misses: Annotated[
        bool, typer.Option("--misses", help="List the questions missed.")
    ] = False,
) -> None:
    """Measure Hit@1, Hit@3, MRR and abstention on a question file."""
    from index.evaluation import evaluate, read_questions

    try:
        questions = read_questions(file)
    except (OSError, ValueError) as err:
        raise _fail(str(err)) from None
    engine = _load(index, model)
    started = time.perf_counter()
    result = evaluate(engine, questions)
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"questions      {len(questions)} ({result.answerable} answerable, "
        f"{result.unanswerable} unanswerable) in {seconds:.1f}s"
    )
    typer.echo(f"Hit@1          {result.hit_at_1:.3f}")
    typer.echo(f"Hit@3          {result.hit_at_3:.3f}")
    typer.echo(f"MRR            {result.mrr:.3f}")
    typer.echo(
        f"not found      {result.abstained_correctly}/{result.unanswerable} unanswerable "
        f"(right), {result.wrongly_not_found}/{result.answerable} answerable (wrong)"
    )
    if show_misses:
        for miss in result.misses:
            typer.echo(f"  - {miss['q']}: {miss['why']}")


SharedOpt = Annotated[
    Path,
    typer.Option(
        "--shared-eval",
        help="The shared evaluation data (SQuAD dev16, Natural Questions, dev_qa.jsonl).",
    ),
]
WorkOpt = Annotated[
    Path,
    typer.Option("--work", help="Where the training indexes are built and kept between runs."),
]


@app.command()
def train(
    shared_eval: SharedOpt = Path("../shared/eval"),
    work: WorkOpt = Path("var/training"),
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the models here instead of into the package."),
    ] = None,
) -> None:
    """Learn the ranker, the "not found" and the highlight models, and print their held-out figures.

    Folds are by article; the models written (index/models/) are fitted on every
    fold, the figures printed come from models that never saw the fold measured.
    A record of data, folds, seed and figures is written beside the models.
    """
    _learn(shared_eval, work, write_models=True, out=out)


@app.command()
def quality(
    shared_eval: SharedOpt = Path("../shared/eval"),
    work: WorkOpt = Path("var/training"),
) -> None:
    """Print quotebot's held-out figures beside BM25, dense and RRF, one table per set.

    Fits the models fold by fold as ``train`` does, without writing any.
    """
    _learn(shared_eval, work, write_models=False, out=None)


def _learn(shared_eval: Path, work: Path, *, write_models: bool, out: Path | None) -> None:
    from index.embeddings import Embedder
    from index.ranker import MODELS
    from index.training.datasets import Sources
    from index.training.run import run

    if not (shared_eval / "squad-dev16" / "qa.jsonl").is_file():
        raise _fail(
            f"no evaluation data at {shared_eval} (expected squad-dev16/qa.jsonl there); "
            "give the folder with --shared-eval"
        )
    settings = _settings()
    repo = Path(__file__).resolve().parent.parent
    say = lambda message: typer.echo(message, err=True)  # noqa: E731
    outcome = run(
        Sources(shared_eval.resolve(), repo),
        work,
        Embedder(settings.model),
        say,
        write_models=write_models,
        models_dir=out or MODELS,
    )
    typer.echo(outcome.report)
    typer.echo(
        f'\n"not found" line: probability {outcome.threshold:.3f}; {outcome.seconds:.0f}s'
        + (f"; models written to {out or MODELS}" if write_models else "")
    )


def _load(index: Path | None, model: str | None):
    from index.engine import QuoteIndex
    from index.store import IndexLoadError

    settings = _settings()
    try:
        return QuoteIndex(
            index or settings.index_dir,
            model or settings.model,
            min_confidence=settings.min_confidence,
        )
    except IndexLoadError as err:
        raise _fail(_with_command(str(err), index)) from None


_BARE_BUILD = "python -m index build"  # how index's own error messages name the build


def _with_command(message: str, index: Path | None) -> str:
    """``message`` with its rebuild hint naming the command as this user ran it.

    The index's errors say ``python -m index build``; the user may have run
    ``.venv/bin/python -m index`` or ``quotebot-index``, and given ``--index``, and
    a hint to paste must do the same.
    """
    if _BARE_BUILD not in message:
        return message
    command = f"{_invocation()} build" + (f" --index {index}" if index is not None else "")
    return message.replace(_BARE_BUILD, command, 1)


def _invocation() -> str:
    """This CLI as it was started: ``.venv/bin/python -m index``, ``quotebot-index``, …"""
    import shutil

    script = Path(sys.argv[0])
    if script.name == "__main__.py":  # python -m index
        program, suffix = Path(sys.executable), " -m index"
    else:  # the quotebot-index console script
        program, suffix = script, ""
    if shutil.which(program.name) == str(program):
        return program.name + suffix  # found on PATH as itself: the bare name works
    try:
        return str(program.relative_to(Path.cwd())) + suffix
    except ValueError:
        return str(program) + suffix


def _plain(answer) -> str:
    if not answer.found:
        return f"Q: {answer.question}\nNot found in the articles.\n"
    lines = [f"Q: {answer.question}"]
    for number, quote in enumerate(answer.quotes, start=1):
        lines.append(f"[{number}] “{quote.text}”")
        for highlight in quote.highlights:
            lines.append(f"    ▸ {highlight}")
        for source in quote.sources:
            lines.append(f"    — {source.line()}" + (f" <{source.url}>" if source.url else ""))
    return "\n".join(lines) + "\n"


def _quiet_libraries(verbose: bool) -> None:
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        for name in ("sentence_transformers", "transformers", "faiss", "bm25s", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)
