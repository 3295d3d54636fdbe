"""The learned highlight: which sentence of a quote the reader's eye is sent to."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from index.highlight import SENTENCE_SIGNALS, Highlighter
from index.ranker import ModelFileError


def test_a_long_answering_sentence_is_highlighted_over_a_short_neighbour(quote_index):
    # The paragraph's second sentence ("Thousands of protesters were injured…") is short
    # and closer to the question in meaning alone; the first holds the count asked for.
    answer = quote_index.answer("how many protesters were killed in November 2019?")
    assert answer.found
    best = answer.quotes[0]
    assert best.highlights
    assert best.highlights[0].startswith("During the uprising, last November, more than 1,500")
    assert not any(h.startswith("Thousands of protesters") for h in best.highlights)


def test_every_quote_highlights_one_or_two_of_its_own_sentences(quote_index):
    for question in (
        "how many votes did the 63rd resolution get?",
        "How many political prisoners were killed in the 1988 massacre?",
        "who is Maryam Rajavi?",
    ):
        for quote in quote_index.answer(question).quotes:
            assert 1 <= len(quote.highlights) <= 2
            for highlight, (a, b) in zip(quote.highlights, quote.spans, strict=True):
                assert quote.text[a:b] == highlight


def test_the_shipped_model_favours_closeness_and_the_question_s_words():
    model = Highlighter.load()
    assert model.signals == SENTENCE_SIGNALS
    coef = dict(zip(model.signals, model.coef, strict=True))
    assert coef["cosine"] > 0 and coef["coverage"] > 0
    close, far = np.array([[0.7, 0, 0.8, 1.0]]), np.array([[0.2, 0, 0.1, 0.0]])
    p = model.probability(np.vstack([close, far]))
    assert 0 < p[1] < p[0] < 1
    assert model.probability(np.zeros((0, len(SENTENCE_SIGNALS)))).shape == (0,)


def test_a_model_file_for_other_signals_is_refused_with_the_command_to_retrain(tmp_path):
    data = asdict(Highlighter.load())
    data["signals"] = ["cosine", "length", "coverage", "answer_type"]
    path = tmp_path / "highlight.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelFileError, match="python -m index train"):
        Highlighter.load(path)


@pytest.mark.parametrize("content", ["", "{", '{"signals": []}', "[1, 2]"])
def test_an_unreadable_model_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "highlight.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelFileError):
        Highlighter.load(path)
    with pytest.raises(ModelFileError, match="train one"):
        Highlighter.load(tmp_path / "missing.json")
