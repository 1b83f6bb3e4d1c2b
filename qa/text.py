"""Small pure text functions for checking evidence: sentences, content words, numbers, names and
text that tries to instruct the model. No models, no state."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from qa.citations import MARKER
from qa.when import MONTH_NAMES, WEEKDAYS

# A sentence ends after . ! ? (and any closing quotes or brackets) before whitespace and an
# upper-case letter, digit or opening quote; or at a line break.
_SENTENCE_END = re.compile(
    r"(?P<stop>[.!?][\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])|\s*\n\s*"
)
# Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr prof gen col lt sgt rep sen gov u.s u.k u.n no vs etc inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e a.m p.m".split()
)
# A proper name as a run of lower-cased words: ("united", "states").
Name = tuple[str, ...]
# A word, with the apostrophes, dots, hyphens and ampersands inside it ("O'Brien", "U.S", "AT&T").
_WORD = re.compile(r"[^\W_]+(?:['\u2019.&-][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
STOP_WORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being do
    does did has have had what which who whom whose when where why how that this these those it
    its they them their he him his she her there then than so such not no can could would should
    will shall may might must about into over after before during also just only very more most
    other some any each many much own same too i me my we our you your s t""".split()
)
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
    "hundred": "100", "thousand": "1000", "first": "1", "second": "2", "third": "3",
}  # fmt: skip

# Text in an article that addresses the model instead of the reader: dropped from evidence.
_INSTRUCTION = re.compile(
    r"ignore (?:all |any |the )?(?:previous|prior|above|earlier|preceding|your)\b"
    r"|disregard (?:all |any |the )?(?:previous|prior|above|earlier|your)\b"
    r"|forget (?:all |everything|your|the previous)"
    r"|(?:new|updated|override|system) (?:instructions?|prompt|rules)"
    r"|(?:you are|act as|pretend to be|you must|you should) (?:now )?(?:an? |the )?"
    r"(?:ai|assistant|chatbot|language model|llm|model)\b"
    r"|(?:you are|act as|pretend to be) (?:now )?(?:an? |the )?(?:[a-z-]+ ){1,2}"
    r"(?:ai|assistant|chatbot|language model|llm)\b"
    r"|\b(?:note|message|instructions?) (?:to|for) (?:all |any |the )?(?:ai|assistant|chatbot|"
    r"language model|llm|model)s?\b"
    r"|\b(?:answer|reply to|respond to) (?:every|all|any) (?:questions?|quer(?:y|ies)|prompts?)\b"
    r"|\b(?:language model|ai assistant|chatbot|the assistant)s?\b.{0,40}\b(?:must|should|will|"
    r"shall|need to)\b"
    r"|(?:^|\n|\s)(?:assistant|system|user|human|ai)\s*:"
    r"|<\|?(?:im_start|im_end|system|assistant|user)\|?>"
    r"|(?:^|[.!?:]\s+|please\s+)(?:respond|reply|answer|say|print|output|write|repeat)\b[^.\n]{0,40}"
    r"\b(?:only|exactly|verbatim|the (?:word|phrase|text|code|string))\b"
    r"|!\[[^\]]*\]\([^)]*\)"
    r"|\b(?:https?|javascript|data):\S*"
    r"|[A-Za-z0-9+/]{40,}={0,2}"
    # Hidden markup, and the answer's own form faked: citation markers, source lists.
    r"|<!--|" + MARKER.pattern + r"|^\W{0,3}(?:sources?|references?|citations?)\s*:",
    re.IGNORECASE,
)
# A chat turn faked in an article ("Assistant: ..."): it lasts to the end of its line.
_ROLE_TURN = re.compile(r"^\W{0,3}(?:assistant|system|user|human|ai)\s*:", re.IGNORECASE)
# A piece of text cut by a line break in mid-sentence (a hard-wrapped line) ends like this.
_WRAPPED = re.compile(r"[\w,;-]$")
# Letters of other scripts that look like Latin ones ("Ign\u043ere" with a Cyrillic o), folded
# before looking for instructions.
_LOOKALIKES = str.maketrans(
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425"
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455"
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7"
    "\u03bf\u03b9",
    "ABEKMHOPCTXaeopcyxijsABEZHIKMNOPTYXoi",
)


def normalize(text: str) -> str:
    """NFKC-normalised text with typographic quotes made plain, invisible characters (zero-width
    spaces and joiners, soft hyphens) dropped and look-alike Cyrillic and Greek letters made
    Latin."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf").translate(_LOOKALIKES)
    return (
        text.replace("\u2019", "'")
        .replace("\u2018", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """`(start, end)` of each sentence of `text`, whitespace trimmed, in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        stop = match.group("stop")
        end = match.start() + len(stop) if stop else match.start()
        before = text[start : match.start()]
        last_word = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
        if stop and stop.startswith(".") and (last_word in _ABBREVIATIONS or _initial(last_word)):
            continue  # "U.S. officials", "Mr. Smith", "J. Smith"
        _add_span(text, start, end, spans)
        start = match.end()
    _add_span(text, start, len(text), spans)
    return spans


def _initial(word: str) -> bool:
    """A single letter such as the "J" of "J. Smith"."""
    return len(word) == 1 and word.isalpha()


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        offset = start + (len(piece) - len(piece.lstrip()))
        spans.append((offset, offset + len(stripped)))


def words(text: str) -> list[str]:
    """Lower-cased word tokens of `text`."""
    return [w.lower().replace("\u2019", "'") for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    """The words of `text` that carry meaning: no stop words, no citation markers."""
    return {_stem(w) for w in words(strip_markers(text)) if w not in STOP_WORDS}


def _stem(word: str) -> str:
    """A crude plural/possessive folding so that "bridges" meets "bridge"."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def numbers(text: str) -> set[str]:
    """Numbers in `text`, written as digits without separators ("1,200" -> "1200")."""
    found = {m.group(0).replace(",", "") for m in _NUMBER.finditer(strip_markers(text))}
    found |= {_NUMBER_WORDS[w] for w in words(text) if w in _NUMBER_WORDS}
    return {n.rstrip(".") for n in found}


def names(text: str) -> set[str]:
    """Capitalised words that are not the first word of `text` (proper names), lower-cased."""
    tokens = _WORD.findall(strip_markers(text))
    return {t.lower() for t in tokens[1:] if t[:1].isupper() and t.lower() not in STOP_WORDS}


def strip_markers(text: str) -> str:
    """`text` without `[n]` citation markers, also those that removing others forms ("[[1]9]")."""
    while True:
        stripped = MARKER.sub("", text)
        if stripped == text:
            return text
        text = stripped


def looks_like_instruction(text: str) -> bool:
    """True when article text addresses a model or carries links, images or encoded blobs: such
    text is data the answer must never act on or repeat."""
    return bool(_INSTRUCTION.search(normalize(text)))


def instruction_flags(text: str, spans: Sequence[tuple[int, int]]) -> list[bool]:
    """For each sentence span of `text` (from `sentence_spans`): whether it is part of text
    that addresses a model. A sentence broken by line breaks (hard-wrapped) is judged whole, and
    a faked chat turn ("Assistant: ...") lasts to the end of its line."""
    flags = [False] * len(spans)
    group: list[int] = []  # the pieces of one hard-wrapped sentence
    turn = False
    for i, (start, end) in enumerate(spans):
        line_break = i > 0 and "\n" in text[spans[i - 1][1] : start]
        if not (group and line_break and _WRAPPED.search(normalize(text[slice(*spans[i - 1])]))):
            group = []
        group.append(i)
        turn = (turn and not line_break) or bool(_ROLE_TURN.match(normalize(text[start:end])))
        joined = " ".join(text[slice(*spans[j])] for j in group)
        if turn or any(flags[j] for j in group) or looks_like_instruction(text[start:end]):
            flags[i] = True
        if flags[i] or (len(group) > 1 and looks_like_instruction(joined)):
            for j in group:
                flags[j] = True
    return flags


# Words that make an answer say something even when all its other words come from the question.
_POLARITY = frozenset({"yes", "no", "not", "never", "none", "nothing", "nobody"})
# A yes/no question starts with one of these; restating it is the answer "yes".
_YES_NO = frozenset(
    "is are was were do does did has have had can could will would should may might must".split()
)


def adds_nothing(answer: str, question: str) -> bool:
    """True when `answer` has words but only restates `question`: no word, number or negation of
    its own ("Why is it called the Pink Palace?" -> "It is called the Pink Palace [3]."). Never
    for a yes/no question, which a restatement answers."""
    said = words(strip_markers(answer))
    asked = words(question)
    if not said or _POLARITY & set(said) or (asked and asked[0] in _YES_NO):
        return False
    return not (content_words(answer) - content_words(question)) and numbers(answer) <= numbers(
        question
    )


# Capitalised words that name a time, not a subject a passage must mention.
_TIME_NAMES = frozenset((*MONTH_NAMES, *WEEKDAYS))
# Short words an abbreviation skips ("CDC": Centers for Disease Control).
_NAME_JOINERS = frozenset({"of", "for", "and", "the", "de", "du", "la", "von", "van"})
# The longest run of words an abbreviation is looked for in.
_ABBREVIATED_WORDS = 5


def _parts(word: str) -> list[str]:
    """The parts of a word between its hyphens, dots and ampersands ("at&t": "at", "t")."""
    return [part for part in re.split(r"[-.&]", word) if part]


def _forms(word: str) -> set[str]:
    """A lower-cased word without its possessive, undotted, and its parts (`_parts`)."""
    word = word.removesuffix("'s")
    return {word, word.replace(".", ""), *_parts(word)}


def _all_forms(found: Sequence[str]) -> set[str]:
    """The forms (`_forms`) of all the words `found`."""
    return set().union(*(_forms(word) for word in found))


@dataclass(frozen=True, slots=True)
class Mentions:
    """What a text can be said to mention: the forms of its words, and the initials of its runs
    of words, so that "AC" is found in "air conditioning" and "CDC" in "Centers for Disease
    Control"."""

    forms: frozenset[str]
    initials: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Mentions:
        """What `text` mentions."""
        found = words(text)
        forms = _all_forms(found)
        letters = "".join(w[0] for w in found if w not in _NAME_JOINERS)
        initials = {
            letters[i:j]
            for i in range(len(letters))
            for j in range(i + 2, min(i + _ABBREVIATED_WORDS, len(letters)) + 1)
        }
        return cls(frozenset(forms), frozenset(initials))

    def run(self, name: Name) -> bool:
        """Whether the text mentions a name of one or more words (from `name_runs`): by its
        initials ("U.S." for "United States"), or by its last word with at least half of its
        words, each as `name` finds it ("VP Kamala Harris" for "Vice President Kamala Harris"; "San
        Francisco" is not "San Diego")."""
        if len(name) > 1 and "".join(word[0] for word in name) in self.forms:
            return True
        found = [self.name(word) for word in name]
        return found[-1] and 2 * sum(found) >= len(found)

    def name(self, name: str) -> bool:
        """Whether the text mentions `name` (a lower-case word of a name): as a word, by all its
        hyphenated or ampersand-joined parts ("AT & T"), by a word sharing its first four
        letters or more ("Europe" for "European"), by a word one letter away (a misspelling), or
        as an abbreviation."""
        if name in self.forms or name in self.initials:
            return True
        parts = _parts(name)
        if len(parts) > 1 and all(self.name(part) for part in parts):
            return True
        return len(name) >= 4 and any(
            len(form) >= 4
            and (
                name.startswith(form)
                or form.startswith(name)
                or (len(name) >= 5 and one_edit_apart(name, form))
            )
            for form in self.forms
        )


def one_edit_apart(a: str, b: str) -> bool:
    """Whether `a` and `b` differ by exactly one inserted, deleted or replaced letter (a
    misspelt name: "Wessel" for "Wesel")."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) > len(b):
        a, b = b, a
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            rest = a[i + 1 :] if len(a) == len(b) else a[i:]
            return rest == b[i + 1 :]
    return True  # b is a with one letter added at the end


def name_runs(text: str) -> set[Name]:
    """The proper names of `text`, each a run of capitalised words that are not its first word
    ("Vice President Kamala Harris", "United States"), lower-cased, without possessives."""
    runs: list[list[str]] = []
    joined = False
    for token in _WORD.findall(strip_markers(text))[1:]:
        word = token.lower().replace("\u2019", "'").removesuffix("'s")
        if token[:1].isupper() and word not in STOP_WORDS:
            if joined:
                runs[-1].append(word)
            else:
                runs.append([word])
            joined = not token.endswith(("'s", "\u2019s"))
        else:
            joined = False
    return {tuple(run) for run in runs}


def last_sentence(question: str) -> str:
    """The question's last sentence: what is asked, after any context ("NASA set a new date for
    Artemis I. How soon could it launch?")."""
    spans = sentence_spans(question)
    return question[slice(*spans[-1])] if spans else question


def required_names(question: str, claim: str) -> set[Name]:
    """The names of `question` that a passage backing `claim` must mention (`Mentions.run`), or
    it is about something else: those the claim repeats a word of ("the ruler of Korea", from a
    passage on Tibet), and for a bare answer that shares no word with the question all those of
    what is asked, its last sentence ("Alberto Calderón", asked which Fields Medal winner teaches
    at Harvard; not the context before it). A month or weekday names a time, not a subject."""
    if not content_words(claim) & content_words(question):
        needed = name_runs(last_sentence(question))
    else:
        repeated = _all_forms(words(strip_markers(claim)))
        needed = {run for run in name_runs(question) if repeated.intersection(run)}
    return {run for run in needed if not set(run) <= _TIME_NAMES}


def coverage(wanted: set[str], have: set[str]) -> float:
    """The share of `wanted` found in `have` (1.0 when nothing is wanted)."""
    return len(wanted & have) / len(wanted) if wanted else 1.0
