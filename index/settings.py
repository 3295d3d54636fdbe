"""Settings shared by the CLI and the bot, from the environment (and a ``.env`` file).

Both read the same variables, so ``python -m index build`` and ``python -m bot``
always agree on where the corpus and the index are and which model embeds them.

A bad value is refused at start with one line that names the variable and says what
it accepts (:meth:`IndexSettings.load`, :func:`describe_errors`) — never a pydantic
traceback. The bot's settings extend these, so both report alike.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Self

import annotated_types
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from index.embeddings import DEFAULT_BACKEND, DEFAULT_MODEL

MAX_SHOWN_VALUE = 40  # characters of a bad value repeated in the message


class SettingsError(ValueError):
    """Invalid settings; the message is one line naming each variable and what it accepts."""


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QUOTEBOT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    corpus_dir: Path = Field(Path("corpus"), description="Folder of article files.")
    index_dir: Path = Field(Path("var/index"), description="Folder the index lives in.")
    model: str = Field(
        DEFAULT_MODEL, description="sentence-transformers model name or path for embeddings."
    )
    embed_backend: str = Field(
        DEFAULT_BACKEND, description="How the model runs: torch, openvino or openvino-int8."
    )
    embed_cache: Path | None = Field(
        None, description="Where converted models are kept (default ~/.cache/quotebot/models)."
    )
    top_k: int = Field(3, ge=1, le=50, description="Quotes per answer.")
    min_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "Override the learned 'not found' line: the probability (0-1) a best quote "
            "needs to be shown."
        ),
    )

    @field_validator("min_confidence", mode="before")
    @classmethod
    def _empty_confidence_is_unset(cls, value: Any) -> Any:
        """``QUOTEBOT_MIN_CONFIDENCE=`` (as in a .env template) means "not set"."""
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def load(cls, **values: Any) -> Self:
        """The settings from the environment (and ``values``); :class:`SettingsError` if bad."""
        try:
            return cls(**values)
        except ValidationError as err:
            raise SettingsError(describe_errors(err, cls)) from None
        except SourceError as err:  # a value pydantic-settings could not even decode
            raise SettingsError(f"invalid setting: {err}") from None


def env_var(model: type[BaseSettings], name: str) -> str:
    """The environment variable that sets field ``name`` of ``model``."""
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, str):
        return alias
    prefix = model.model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def accepts(field: FieldInfo) -> str:
    """What ``field`` accepts, in words, from its type and bounds: "a whole number from 1 to 50"."""
    kind = _kind(field.annotation)
    low = high = None
    low_open = high_open = False
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Gt):
            low, low_open = rule.gt, True
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
        elif isinstance(rule, annotated_types.Lt):
            high, high_open = rule.lt, True
    if low is not None and high is not None and not (low_open or high_open):
        return f"{kind} from {low} to {high}"
    bounds = []
    if low is not None:
        bounds.append(f"greater than {low}" if low_open else f"of at least {low}")
    if high is not None:
        bounds.append(f"less than {high}" if high_open else f"of at most {high}")
    return " ".join([kind, " and ".join(bounds)]).strip()


def _kind(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [_kind(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(kinds)
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (frozenset, set, list, tuple):
        return "a comma-separated list"
    names = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        Path: "a path",
        str: "text",
        SecretStr: "text",
    }
    return names.get(annotation, "a value")


def _field_for(model: type[BaseSettings], loc: tuple[Any, ...]) -> str | None:
    """The field an error's location points to (by name or by its variable's name)."""
    if not loc:
        return None
    head = str(loc[0])
    for name, field in model.model_fields.items():
        if head in (name, field.validation_alias):
            return name
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + "…'"


def describe_errors(err: ValidationError, model: type[BaseSettings]) -> str:
    """One line for all of ``err``'s problems: each variable, its value and what it accepts."""
    problems = []
    for error in err.errors():
        name = _field_for(model, tuple(error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        if name is None:  # a rule across several settings: its message names them
            problems.append(message)
            continue
        field = model.model_fields[name]
        hidden = _is_secret(field.annotation) or "input" not in error
        value = "" if hidden else f"={_shown(error['input'])}"
        if error["type"] != "value_error":  # our own validators say what they expect
            message = f"expects {accepts(field)}"
        problems.append(f"{env_var(model, name)}{value}: {message}")
    return f"invalid setting{'s' if len(problems) > 1 else ''}: {'; '.join(problems)}"


def _is_secret(annotation: Any) -> bool:
    """Never repeat a secret (a token) in a message, even a malformed one."""
    return annotation is SecretStr or any(_is_secret(a) for a in typing.get_args(annotation))
