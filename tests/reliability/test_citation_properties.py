"""Citation parser, checker and renderer on arbitrary model output: never a crash, never a citation
of a passage that was not retrieved, and no attacker markup in the page.

Model text is drawn from pieces real models emit and attackers write (`[0]`, `[999]`, `[1,2]`,
nested brackets, Markdown, HTML, template syntax, control characters), glued with arbitrary text.
The check runs on real evidence (the sample index, the real embedding model); one smaller
property drives the whole chain with a chat model that returns that garbage.
"""

from __future__ import annotations

import html
import re
import time
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from index.types import Chunk
from qa import Answer, QAChain, RetrievedChunk
from qa.chain import gather_evidence
from qa.citations import clean_markers, find_markers, format_sources
from qa.evidence import Evidence
from qa.grounding import make_citation, split_claims
from qa.retrieval import PassageRetriever
from qa.text import strip_markers
from qa.types import NOT_COVERED, CheckedSentence
from tests.conftest import ReliabilityRow, examples, make_settings
from tests.support.checks import assert_cites_only_retrieved
from ui.render import (
    answer_html,
    citation_html,
    draft_html,
    make_turn,
    panel_html,
    question_html,
    sentence_html,
    sources_html,
)

QUESTION = "Who is Wang Lei?"
# What models and attackers write around and inside citation markers.
PIECES = [
    "[0]",
    "[1]",
    "[2]",
    "[4]",
    "[5]",
    "[999]",
    "[1000]",
    "[1,2]",
    "[1, 2, 3]",
    "[1][2]",
    "[[1]9]",
    "[1,[2]3]",
    "[[[1]]]",
    "[-1]",
    "[01]",
    "[1.5]",
    "[",
    "]",
    "[]",
    "[^1]",
    "(1)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "</div><div onclick=alert(1)>",
    "<!--",
    "-->",
    "&lt;b&gt;",
    "&amp;",
    "[x](javascript:alert(1))",
    "![i](http://198.51.100.7/a.png)",
    "**bold**",
    "`code`",
    "# heading",
    "> quote",
    "| a | b |",
    "{context}",
    "{{",
    "%s",
    "\n",
    "\n\n",
    "\r",
    "\u2028",
    ". ",
    "? ",
    "... ",
    "\x00",
    "\x1b[31m",
    "\u202e",
    "\u200b",
    '"',
    "'",
    NOT_COVERED,
    "Wang Lei is the coordinator for cyber and digital affairs at China's Ministry of "
    "Foreign Affairs",
    "Wang Lei said China offers opportunities for the EU's digital development",
    "The Amazon rainforest covers seven million square kilometres",
    "Super Bowl 50 was played in 2016",
]
model_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=14).map(
    "".join
)

# Tags and attributes the renderers write themselves; anything else came from the input.
ALLOWED_TAGS = {"div", "span", "a", "br", "mark", "strong", "ul", "li", "details", "summary", "b"}
ALLOWED_ATTRS = {"class", "href", "title", "id", "target", "rel", "open"}
_CITE_HREF = re.compile(r"#cite-\d+-\d+")
_SAFE_HREF = re.compile(r"https?://[^\s<>\"'`\\]+", re.IGNORECASE)


class TagAudit(HTMLParser):
    """Every tag and attribute of an HTML fragment, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRS:
                self.problems.append(f"attribute {name} on <{tag}>")
            elif name == "href" and not (
                _CITE_HREF.fullmatch(value or "") or _SAFE_HREF.fullmatch(value or "")
            ):
                self.problems.append(f"href {value!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"end tag </{tag}>")

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instruction")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration {data!r}")


def assert_safe_html(fragment: str, *, chat: bool = False) -> None:
    """Only the renderers' own tags and attributes, links to passages or plain http(s) URLs; a
    chat message is one line (a blank line would end its HTML block and let Markdown in)."""
    audit = TagAudit()
    audit.feed(fragment)
    audit.close()
    assert not audit.problems, (audit.problems, fragment)
    if chat:
        assert "\n" not in fragment, fragment
        assert "\r" not in fragment, fragment


@pytest.fixture(scope="module")
def extractive_chain(sample_index: Any) -> QAChain:
    from qa import build_chain

    return build_chain(make_settings(sample_index, llm_backend="extractive"))


@pytest.fixture(scope="module")
def evidence(extractive_chain: QAChain) -> Evidence:
    retriever = extractive_chain.retriever
    hits = retriever.search(QUESTION, 4, (), None).passages
    assert len(hits) == 4
    return gather_evidence(retriever, QUESTION, hits)


def test_marker_parser_on_arbitrary_text(reliability: list[ReliabilityRow]) -> None:
    tried = 0

    @settings(max_examples=examples(1000))
    @given(text=model_text, valid=st.sets(st.integers(0, 1000), max_size=6))
    @example(text="[[1]9] and [1,[2]3] [[[5]]]", valid={1})
    def check(text: str, valid: set[int]) -> None:
        nonlocal tried
        tried += 1
        cleaned = clean_markers(text, valid)
        assert set(find_markers(cleaned)) <= valid
        assert find_markers(strip_markers(text)) == []
        for claim, cited in split_claims(text):
            assert claim.strip()
            assert find_markers(claim) == [], claim
            assert all(isinstance(n, int) for n in cited)

    check()
    reliability.append(
        ReliabilityRow(part="citation parser (pure)", inputs=tried, note="find/clean/split")
    )


def test_checked_answer_on_arbitrary_model_output(
    extractive_chain: QAChain, evidence: Evidence, reliability: list[ReliabilityRow]
) -> None:
    """`finish` is what every model answer goes through: the citation check on real evidence,
    then the page's rendering of the result."""
    tried = covered = 0
    durations: list[float] = []

    @settings(max_examples=examples(150))
    @given(raw=model_text)
    @example(raw="Wang Lei is the coordinator for cyber affairs [[1]9]. He spoke [999] [0].")
    @example(raw="<script>alert(1)</script> Wang Lei is the coordinator [1,2,3,4,5].")
    @example(raw="\n\n![i](http://198.51.100.7/a.png) Wang Lei [1]\n\n<img src=x onerror=alert(1)>")
    def check(raw: str) -> None:
        nonlocal tried, covered
        tried += 1
        started = time.perf_counter()
        base = Answer(
            question=QUESTION,
            text=NOT_COVERED,
            citations=(),
            retrieved=evidence.passages,
            covered=False,
        )
        answer = extractive_chain.finish(base, raw, evidence, started, {})
        durations.append(time.perf_counter() - started)
        covered += answer.covered
        assert_cites_only_retrieved(answer)
        turn = make_turn(3, QUESTION, answer)
        assert_safe_html(turn.message, chat=True)
        assert_safe_html(turn.sources)
        assert_safe_html(panel_html([turn]))
        assert_safe_html(draft_html(raw), chat=True)
        assert set(find_markers(turn.copy.split("\n\nSources:")[0])) <= {
            c.marker for c in answer.citations
        }

    check()
    durations.sort()
    reliability.append(
        ReliabilityRow(
            part="citation check + renderer (real evidence)",
            inputs=tried,
            p95_ms=1000 * durations[int(0.95 * (len(durations) - 1))],
            note=f"{covered} answers kept a checked citation",
        )
    )


# ---- the renderers on arbitrary answers (titles, outlets, URLs, text from anywhere) ----

hostile_field = st.one_of(st.sampled_from(PIECES), st.text(max_size=30))
urls = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "https://example.org/story",
            "javascript:alert(1)",
            " javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            'https://example.org/"onmouseover="alert(1)',
            "https://example.org/<script>",
            "http://example.org/a b",
            "vbscript:msgbox(1)",
            "//198.51.100.7/x",
        ]
    ),
    st.text(max_size=30),
)


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    count = draw(st.integers(0, 5))
    hits = []
    for number in range(1, count + 1):
        text = draw(st.text(min_size=1, max_size=60))
        chunk = Chunk(
            id=f"c{number}",
            article_id=f"a{number}",
            index=0,
            text=text,
            start=0,
            end=len(text),
            title=draw(hostile_field),
            source=draw(st.one_of(st.none(), hostile_field)),
            url=draw(urls),
            published=draw(st.one_of(st.none(), hostile_field)),
            other_sources=tuple(draw(st.lists(hostile_field, max_size=2))),
        )
        hits.append(RetrievedChunk(chunk, draw(st.floats(-1, 1)), number, draw(st.floats(-1, 1))))
    citations = []
    for number in draw(st.sets(st.integers(1, count), max_size=count)) if count else ():
        spans = draw(st.lists(st.tuples(st.integers(-5, 70), st.integers(-5, 70)), max_size=3))
        citations.append(make_citation(number, hits[number - 1], tuple(spans), 0.7))
    markers = [c.marker for c in citations]
    sentences = tuple(
        CheckedSentence(
            draw(model_text),
            tuple(draw(st.lists(st.sampled_from(markers), max_size=2))) if markers else (),
            draw(st.booleans()),
            None,
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    return Answer(
        question=draw(model_text),
        text=draw(model_text),
        citations=tuple(citations),
        retrieved=tuple(hits),
        covered=draw(st.booleans()),
        sentences=sentences,
        backend=draw(st.sampled_from(["local", "openai", "extractive", "<b>x</b>"])),
        notice=draw(st.one_of(st.none(), model_text)),
        standalone_question=draw(st.one_of(st.none(), model_text)),
    )


def test_renderers_escape_everything(reliability: list[ReliabilityRow]) -> None:
    tried = 0

    @settings(max_examples=examples(400))
    @given(answer=answers(), turn=st.integers(1, 10**6))
    def check(answer: Answer, turn: int) -> None:
        nonlocal tried
        tried += 1
        assert_safe_html(answer_html(answer, turn), chat=True)
        assert_safe_html(question_html(answer.question), chat=True)
        assert_safe_html(draft_html(answer.text), chat=True)
        assert_safe_html(sources_html(answer, turn))
        for citation in answer.citations:
            card = citation_html(citation, answer, turn)
            assert_safe_html(card)
            # the passage survives escaping: what the card shows is the passage text
            shown = re.search(r'<div class="cq-passage">(.*?)</div>', card, re.DOTALL)
            assert shown is not None
            assert html.unescape(re.sub(r"</?mark>", "", shown.group(1))) == citation.passage
        for sentence in answer.sentences:
            assert_safe_html(sentence_html(sentence.text, sentence.markers, turn), chat=True)
        format_sources(answer.citations)  # plain text: must not fail

    check()
    reliability.append(ReliabilityRow(part="HTML renderers", inputs=tried, note="tag audit"))


# ---- the whole chain, with a chat model that writes garbage (LangChain's fake model streams
# its reply a character at a time; a real model cannot be made to write garbage on demand) ----


def test_chain_with_a_model_that_writes_garbage(
    extractive_chain: QAChain, reliability: list[ReliabilityRow]
) -> None:
    retriever: PassageRetriever = extractive_chain.retriever
    settings_ = extractive_chain.settings.model_copy(update={"llm_backend": "local"})
    tried = 0

    @settings(max_examples=examples(15))
    @given(raw=model_text)
    @example(raw="Wang Lei is the coordinator for cyber and digital affairs [[2]7] [999].")
    def check(raw: str) -> None:
        nonlocal tried
        tried += 1
        chain = QAChain(retriever, FakeListChatModel(responses=[raw]), settings_)
        events = list(chain.events(QUESTION))
        final = events[-1]
        assert isinstance(final, Answer)
        assert all(isinstance(e, str) for e in events[:-1])
        streamed = "".join(e for e in events[:-1] if isinstance(e, str))
        # an empty reply is a model failure: the extractive answer follows, with a notice
        assert streamed == raw if final.notice is None else streamed.startswith(raw)
        assert (final.notice is None) == (final.backend == "local")
        assert_cites_only_retrieved(final)
        assert_safe_html(answer_html(final, 1), chat=True)
        assert_safe_html(sources_html(final, 1))

    check()
    reliability.append(
        ReliabilityRow(part="chain with a garbage-writing model", inputs=tried, note="fake LLM")
    )
