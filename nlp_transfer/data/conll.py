"""Token-tagged data: CoNLL column files and JSONL/JSON with token and tag lists.

Tags are checked against the tagging scheme and normalised to IOB2 (B- starts every entity).
IOB1 (I- may start an entity, B- only separates two adjacent ones) and BIOES (S- single, E- end)
are accepted. Each problem names ``file:line``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nlp_transfer.data.readers import read_records, read_text, text_lines
from nlp_transfer.errors import DataError

logger = logging.getLogger(__name__)

TAG_PATTERN = re.compile(r"^(?:O|([BIES])-(.+))$")
SPACES = re.compile(r" +")  # the columns of a space-separated line: other whitespace may sit inside a token


@dataclass
class TaggedSentence:
    """One sentence: its words, their tags, the line it starts on, the document it belongs to, and how many
    of its tags were I- (or E-) tags that began an entity and were read as B- (see :func:`normalise_file`)."""

    tokens: list[str]
    tags: list[str]
    line: int
    document: int = 0
    repaired: int = 0
    line_per_token: bool = False  # a CoNLL sentence: token i is on line ``line + i``; a JSON one is all on ``line``

    def first_unknown(self, known: set[str]) -> tuple[str, int] | None:
        """The first tag not in ``known`` and the line it is on, or None."""
        for index, tag in enumerate(self.tags):
            if tag not in known:
                return tag, self.line + index if self.line_per_token else self.line
        return None


@dataclass
class TaggedFile:
    """The sentences of one file, and the scheme its tags were written in."""

    sentences: list[TaggedSentence] = field(default_factory=list)
    scheme: str = "iob2"


@dataclass
class _SentenceCollector:
    """Collects token lines into sentences, numbering documents at ``-DOCSTART-`` lines."""

    sentences: list[TaggedSentence] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    start: int = 0
    document: int = 0

    def add(self, number: int, token: str, tag: str) -> None:
        """Append a token of line ``number`` to the open sentence (which starts there when it was empty)."""
        if not self.tokens:
            self.start = number
        self.tokens.append(token)
        self.tags.append(tag)

    def flush(self) -> None:
        """Close the open sentence, if any."""
        if self.tokens:
            self.sentences.append(TaggedSentence(self.tokens, self.tags, self.start, self.document, line_per_token=True))
            self.tokens, self.tags = [], []

    def new_document(self) -> None:
        """Close the open sentence; the next one starts a new document unless the current one is still empty."""
        self.flush()
        if self.sentences and self.sentences[-1].document == self.document:
            self.document += 1


def _conll_token_and_tag(
    columns: list[str], line: str, where: str, width: int | None, *, token_column: int, tag_column: int
) -> tuple[str, str, int]:
    """The token and tag of one token line, and the file's column count.

    ``line`` is the stripped line and ``where`` its ``file:line``, for messages. ``width`` is the column count of the
    first token line (None for that line itself); a line with another count, an empty token, a missing column or
    a tag outside the IOB/BIOES scheme is a DataError.
    """
    if width is None:
        width = len(columns)
        if width < 2:
            raise DataError(f"{where}: expected a token and a tag separated by spaces or a tab, found {line!r}.")
    if len(columns) != width:
        raise DataError(
            f"{where}: expected {width} columns like the first token line, found {len(columns)} ({line!r}). "
            "Fix the line; columns are separated by spaces or tabs."
        )
    try:
        token, tag = columns[token_column].strip(), columns[tag_column].strip()
    except IndexError:
        raise DataError(
            f"{where}: no column {token_column if abs(token_column) >= width else tag_column} in a {width}-column file. "
            "Set data.token_column / data.tag_column."
        ) from None
    if not token:
        raise DataError(f"{where}: empty token. Remove the line or fill in the token.")
    check_scheme_tag(tag, where, " Fix the tag, or set data.tag_column if the tags are in another column.")
    return token, tag, width


def check_scheme_tag(tag: object, where: str, hint: str = "") -> None:
    """A DataError naming ``where`` (``file:line``) unless ``tag`` is a string in the IOB/BIOES scheme; ``hint`` ends it."""
    if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
        raise DataError(f"{where}: tag {tag!r} is not in the IOB/BIOES scheme (O, B-TYPE, I-TYPE, E-TYPE, S-TYPE).{hint}")


def check_scheme_tags(sentences: Sequence[TaggedSentence], where: str, hint: str = "") -> None:
    """:func:`check_scheme_tag` on every tag of ``sentences`` (each distinct tag once), naming ``where:line``."""
    checked: set[object] = set()
    for sentence in sentences:
        for index, tag in enumerate(sentence.tags):
            if tag not in checked:
                check_scheme_tag(tag, f"{where}:{sentence.line + index if sentence.line_per_token else sentence.line}", hint)
                checked.add(tag)


def read_conll(
    path: str, *, token_column: int = 0, tag_column: int = -1, encoding: str = "utf-8", scheme: str = "auto"
) -> TaggedFile:
    """Read a CoNLL file: one token a line, whitespace- or tab-separated columns, blank lines between sentences.

    ``-DOCSTART-`` lines separate documents (numbered from 0 in :attr:`TaggedSentence.document`; a file
    without them is one document). Every line must have as many columns as the first token line.
    """
    collector = _SentenceCollector()
    width: int | None = None
    checked_tags: set[str] = set()  # tags already matched against the scheme: most lines skip the full check
    # lines end at \n, \r\n or \r (old Mac files were one line): splitlines() would also cut at U+2028 inside a token
    for number, raw in enumerate(text_lines(read_text(path, encoding)), start=1):
        line = raw.strip()
        if not line:
            collector.flush()
            continue
        kept = raw.rstrip()  # a trailing tab adds no empty column; a leading one still means an empty token
        columns = kept.split("\t") if "\t" in kept else SPACES.split(line)
        if columns[0] == "-DOCSTART-":
            collector.new_document()
            continue
        same_width = len(columns) == width
        if same_width:
            token, tag = columns[token_column].strip(), columns[tag_column].strip()
        if not same_width or not token or tag not in checked_tags:  # the first line, a new tag, or a fault
            where = f"{path}:{number}"
            token, tag, width = _conll_token_and_tag(
                columns, line, where, width, token_column=token_column, tag_column=tag_column
            )
            checked_tags.add(tag)
        collector.add(number, token, tag)
    collector.flush()
    if not collector.sentences:
        raise DataError(f"{path}: no tagged sentences found. Give a file with 'token tag' lines.")
    return normalise_file(TaggedFile(collector.sentences), path, scheme)


def read_tagged_json(
    path: str, *, fmt: str, tokens_field: str, tags_field: str, encoding: str = "utf-8", scheme: str = "auto"
) -> TaggedFile:
    """JSON/JSONL objects with a list of tokens and a list of tags each.

    An optional ``document`` field groups consecutive sentences into documents (for document context);
    without it the file is one document.
    """
    records = read_records(path, format=fmt, delimiter=None, header=True, encoding=encoding)
    sentences: list[TaggedSentence] = []
    document, previous_key = 0, None
    for record in records:
        where = f"{path}:{record.line}"
        for key in (tokens_field, tags_field):
            if key not in record.fields:
                raise DataError(
                    f"{where}: no '{key}' field; the fields are {sorted(record.fields)}. Set data.text_column / data.label_column."
                )
        tokens, tags = record.fields[tokens_field], record.fields[tags_field]
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise DataError(f"{where}: '{tokens_field}' and '{tags_field}' must be lists.")
        if len(tokens) != len(tags):
            raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags. Give one tag per token.")
        if not tokens:
            raise DataError(f"{where}: an empty sentence. Remove it.")
        for token, tag in zip(tokens, tags, strict=True):
            if not isinstance(token, str) or not token.strip():
                raise DataError(f"{where}: empty token {token!r}. Fill it in or remove it.")
            check_scheme_tag(tag, where)
        key = record.fields.get("document")
        if sentences and key != previous_key:
            document += 1
        previous_key = key
        sentences.append(TaggedSentence([t.strip() for t in tokens], list(tags), record.line, document))
    return normalise_file(TaggedFile(sentences), path, scheme)


def detect_scheme(sentences: Sequence[TaggedSentence]) -> str:
    """``bioes`` if E-/S- tags occur; ``iob1`` if an entity starts with I-; else ``iob2``."""
    seen_i_start = False
    for sentence in sentences:
        previous = "O"
        for tag in sentence.tags:
            if tag[:2] in ("E-", "S-"):
                return "bioes"
            if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
                seen_i_start = True
            previous = tag
    return "iob1" if seen_i_start else "iob2"


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Rewrite one sentence's tags from ``scheme`` (iob1, iob2, bioes) to IOB2."""
    result = []
    previous = "O"
    for tag in tags:
        prefix, kind = (tag[0], tag[2:]) if tag != "O" else ("O", "")
        if scheme == "bioes":
            prefix = {"S": "B", "E": "I"}.get(prefix, prefix)
        if prefix == "I" and (previous == "O" or previous[2:] != kind):
            prefix = "B"  # IOB1 starts, and any stray I- that follows O or another type
        new = "O" if prefix == "O" else f"{prefix}-{kind}"
        result.append(new)
        previous = new
    return result


def normalise_file(tagged: TaggedFile, path: str, scheme: str = "auto") -> TaggedFile:
    """Detect (or check) the scheme and rewrite all tags to IOB2.

    A tag that continues an entity (I-, or E- in BIOES) but begins one is read as B-; each sentence counts
    these in :attr:`TaggedSentence.repaired`, and a file with any gets one warning. A file in IOB1 proper (its B- tags
    only separate two adjacent entities of a type, :func:`b_tags_only_separate`) begins its entities with I- by
    design: nothing is counted or warned. A file whose B- tags also begin entities after O is IOB2 with stray I- tags,
    even though it is read as IOB1: those are counted and warned.
    """
    detected = detect_scheme(tagged.sentences)
    if scheme == "auto":
        scheme = detected
    elif scheme != detected and (scheme == "iob2" or detected == "bioes"):  # S-/E- tags were passed on as unknown tags
        sentence = next(s for s in tagged.sentences if detect_scheme([s]) == detected)
        fits = "auto or bioes" if detected == "bioes" else "auto, iob1 or bioes"
        raise DataError(
            f"{path}:{sentence.line}: the tags are not {scheme.upper()} (found {detected} tags in this sentence). "
            f"Set data.tag_scheme to {fits}."
        )
    iob1 = scheme == "iob1" and b_tags_only_separate(tagged.sentences)  # its I- starts are the scheme, not faults
    for sentence in tagged.sentences:
        new = to_iob2(sentence.tags, scheme)
        if not iob1:
            sentence.repaired = sum(old[0] in "IE" and tag[0] == "B" for old, tag in zip(sentence.tags, new, strict=True))
        sentence.tags = new
    tagged.scheme = scheme
    repaired = sum(s.repaired for s in tagged.sentences)
    if repaired:
        logger.warning(
            "%s: %d %s tags that began an entity were read as B- (IOB2, file read as %s); seqeval's default mode and "
            "conlleval score such tags the same way, seqeval's strict IOB2 mode on the raw file would drop those entities.",
            path,
            repaired,
            "I-/E-" if scheme == "bioes" else "I-",
            scheme.upper(),
        )
    return tagged


def b_tags_only_separate(sentences: Sequence[TaggedSentence]) -> bool:
    """Whether every B- tag follows a tag of its own type, as in IOB1 proper, where B- only separates two adjacent
    entities of one type; a B- after O, after another type or at a sentence start marks IOB2."""
    for sentence in sentences:
        previous = "O"
        for tag in sentence.tags:
            if tag.startswith("B-") and previous[2:] != tag[2:]:
                return False
            previous = tag
    return True


def entity_types(sentences: Sequence[TaggedSentence]) -> list[str]:
    """Sorted entity types found in IOB2 tags."""
    return sorted({tag[2:] for s in sentences for tag in s.tags if tag != "O"})


def tag_names(types: Sequence[str]) -> list[str]:
    """The IOB2 label list: O, then B-/I- for each type."""
    return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]
