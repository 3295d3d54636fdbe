"""Reading the corpus: front matter."""

from __future__ import annotations

from index.corpus import read_article, read_corpus
from tests.conftest import write_article

STORY = "The harbour reopened on Monday after the storm damaged three piers."


def test_front_matter_that_never_closes_is_reported_not_indexed(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "open.md").write_text(f"---\ntitle: Harbour\npublisher: Post\n\n{STORY}\n")
    (corpus / "list.md").write_text(f"---\n- just\n- a list\n---\n\n{STORY}\n")
    (corpus / "empty-fields.md").write_text(f"---\n---\n\n{STORY}\n")
    (corpus / "rule.md").write_text(f"----\ntitle: Four dashes\n----\n{STORY}\n")
    (corpus / "no-front.md").write_text(f"{STORY}\n\n---\n\nAfter a horizontal rule.\n")
    found = read_corpus(corpus)
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons == {
        "open.md": "malformed front matter: not closed (no '---' line after the fields)",
        "list.md": "malformed front matter: not a mapping of fields (name: value)",
    }
    articles = {a.path: a for a in found.articles}
    assert articles["empty-fields.md"].body == STORY
    assert articles["empty-fields.md"].title == STORY  # no title: its opening words
    assert articles["rule.md"].title == "Four dashes"
    assert articles["no-front.md"].body == f"{STORY}\n\n---\n\nAfter a horizontal rule."


def test_markdown_with_bom_and_crlf_reads_like_plain_markdown(tmp_path):
    plain = write_article(tmp_path / "a", "plain.md", STORY, title="Harbour", date="2025-03-01")
    crlf = tmp_path / "b" / "crlf.md"
    crlf.parent.mkdir()
    crlf.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    one, other = read_article(plain), read_article(crlf)
    assert (one.title, one.date, one.body) == (other.title, other.date, other.body)
    assert one.body == STORY
