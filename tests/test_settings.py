"""Invalid settings, from the CLI and the bot alike: one line naming the variable and
what it accepts, exit code 2, no traceback; out-of-range values refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot import __main__ as bot_main
from bot.settings import BotSettings, settings_table
from index.settings import IndexSettings, SettingsError
from tests.bot_fixtures import ROOT, clean_env

# variable, bad value, what the one line must say
INDEX_CASES = [
    ("QUOTEBOT_TOP_K", "abc", "QUOTEBOT_TOP_K='abc': expects a whole number from 1 to 50"),
    ("QUOTEBOT_TOP_K", "51", "QUOTEBOT_TOP_K='51': expects a whole number from 1 to 50"),
    ("QUOTEBOT_MIN_CONFIDENCE", "2", "QUOTEBOT_MIN_CONFIDENCE='2': expects a number from 0 to 1"),
    ("QUOTEBOT_MIN_CONFIDENCE", "-0.1", "expects a number from 0 to 1"),
    ("QUOTEBOT_MIN_CONFIDENCE", "high", "expects a number from 0 to 1"),
]
BOT_CASES = [
    *INDEX_CASES,
    ("QUOTEBOT_WEBHOOK_PORT", "0", "QUOTEBOT_WEBHOOK_PORT='0': expects a whole number from 1"),
    ("QUOTEBOT_WEBHOOK_PORT", "http", "expects a whole number from 1 to 65535"),
    ("QUOTEBOT_RATE_LIMIT_PER_MINUTE", "-1", "expects a whole number of at least 0"),
    ("QUOTEBOT_NETWORK_RETRY_DELAY", "0", "expects a number greater than 0"),
    ("QUOTEBOT_CONTEXT_RADIUS", "9", "expects a whole number from 1 to 5"),
    ("QUOTEBOT_INLINE_RESULTS", "99", "expects a whole number from 1 to 50"),
    ("QUOTEBOT_CONCURRENT_UPDATES", "0", "expects a whole number of at least 1"),
    ("QUOTEBOT_SEND_RATE", "fast", "QUOTEBOT_SEND_RATE='fast': expects a number of at least 0"),
    ("QUOTEBOT_GROUP_SEND_RATE", "-5", "expects a number of at least 0"),
    ("QUOTEBOT_ADMINS", "7,x", "QUOTEBOT_ADMINS='7,x': expects comma-separated numeric ids"),
    ("QUOTEBOT_ALLOWED_CHATS", "group", "expects comma-separated numeric ids"),
    ("QUOTEBOT_LOG_LEVEL", "loud", "expects DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("TELEGRAM_BASE_URL", "ftp://x", "TELEGRAM_BASE_URL='ftp://x': expects an http(s) URL"),
    ("QUOTEBOT_WEBHOOK_URL", "nope", "QUOTEBOT_WEBHOOK_URL='nope': expects the public https URL"),
    ("QUOTEBOT_WEBHOOK_SECRET", "a*b", "QUOTEBOT_WEBHOOK_SECRET: expects 1-256 characters"),
]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.mark.parametrize(("variable", "value", "expected"), BOT_CASES)
def test_bot_refuses_a_bad_setting_in_one_line(variable, value, expected, monkeypatch, capsys):
    monkeypatch.setenv(variable, value)
    assert bot_main.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quotebot: invalid setting: ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err and "pydantic" not in err


def test_several_bad_settings_share_the_line(monkeypatch, capsys):
    monkeypatch.setenv("QUOTEBOT_TOP_K", "x")
    monkeypatch.setenv("QUOTEBOT_LOG_LEVEL", "y")
    assert bot_main.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quotebot: invalid settings: ") and err.count("\n") == 1
    assert "QUOTEBOT_TOP_K='x'" in err and "QUOTEBOT_LOG_LEVEL='y'" in err


def test_a_malformed_token_is_never_repeated(monkeypatch):
    with pytest.raises(SettingsError) as info:
        BotSettings.load(
            _env_file=None, telegram_bot_token="123:secret-value", webhook_secret="x y"
        )
    assert "secret-value" not in str(info.value) and "x y" not in str(info.value)


@pytest.mark.parametrize(("variable", "value", "expected"), INDEX_CASES)
def test_index_settings_refuse_bad_values(variable, value, expected, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=r"^invalid setting: ") as info:
        IndexSettings.load(_env_file=None)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_good_edge_values_and_empty_mean_default(monkeypatch):
    monkeypatch.setenv("QUOTEBOT_MIN_CONFIDENCE", "1")
    monkeypatch.setenv("QUOTEBOT_TOP_K", "50")
    settings = IndexSettings.load(_env_file=None)
    assert (settings.min_confidence, settings.top_k) == (1.0, 50)
    monkeypatch.setenv("QUOTEBOT_MIN_CONFIDENCE", "")
    assert IndexSettings.load(_env_file=None).min_confidence is None
    monkeypatch.setenv("QUOTEBOT_JOURNAL", "")
    assert BotSettings.load(_env_file=None).journal is None


@pytest.mark.parametrize(
    ("command", "variable", "value", "expected"),
    [
        (["search", "x"], "QUOTEBOT_TOP_K", "abc", "expects a whole number from 1 to 50"),
        (["search", "x"], "QUOTEBOT_MIN_CONFIDENCE", "2", "expects a number from 0 to 1"),
        (["stats"], "QUOTEBOT_TOP_K", "0", "QUOTEBOT_TOP_K='0'"),
        (["build"], "QUOTEBOT_MIN_CONFIDENCE", "1.5", "QUOTEBOT_MIN_CONFIDENCE='1.5'"),
    ],
)
def test_cli_refuses_a_bad_setting_in_one_line(command, variable, value, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTEBOT_")}
    env[variable] = value
    done = subprocess.run(
        [sys.executable, "-m", "index", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: invalid setting: ") and expected in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_readme_settings_table_is_what_the_bot_prints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "regenerate it: python -m bot --settings"
