"""Token classification (named-entity recognition): a tag per word, entities as IOB2 spans.

Words are split into subwords by the model's tokenizer. By default the first subword of a word
carries its tag and the others are ignored (-100); ``label_all_subwords`` tags every piece, turning
B- into I- on continuation pieces. A sentence that does not fit ``max_length`` is cut into windows of
whole words, each a separate model input, and put back together for metrics and predictions: no word
is ever dropped. Metrics are entity-level (seqeval) on words, not subwords. A byte-level BPE tokenizer (RoBERTa,
DeBERTa v1, GPT-2) reads each word with a space before it (``add_prefix_space``), as words come in running text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

from nlp_transfer.config import RunConfig
from nlp_transfer.data.tagged_rows import TokenClassificationData, load_token_classification_data
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.evaluation.metrics import entity_metrics, scalar_metrics
from nlp_transfer.evaluation.scores import repaired_iob2
from nlp_transfer.models import resolve_with_tokenizer
from nlp_transfer.tasks.base import Task, softmax

IGNORE = -100
#: code points of CJK ideographs, each a word of its own to BERT's tokenizer (the blocks its ``_is_chinese_char``
#: names): unified ideographs and their extensions A to E, and the compatibility ideographs
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES)
#: the runs split_words reads: one ideograph, letters and digits (no ideograph), whitespace, or any other single
#: character. Whitespace leaves out the control characters Python counts as spaces (\v, \f, \x1c-\x1f, \x85):
#: BERT's tokenizer deletes those, as it does every control character but tab, newline and carriage return.
WORD_PATTERN = re.compile(
    rf"(?P<cjk>[{_CJK_CLASS}])|(?P<word>[^\W{_CJK_CLASS}]+)|(?P<space>[^\S\x0b\x0c\x1c-\x1f\x85]+)|.", re.DOTALL
)


#: Unicode categories of characters that only modify the one before them: combining accents (a decomposed "é"),
#: variation selectors (the U+FE0F of "❤️"), soft hyphens and other invisible format characters
MODIFIER_CATEGORIES = frozenset({"Mn", "Mc", "Me", "Cf"})


def is_invisible(char: str) -> bool:
    """Whether ``char`` is a modifier (:data:`MODIFIER_CATEGORIES`) or a control character, which the tokenizer deletes
    (every category C character but tab, newline and carriage return, and U+FFFD) or reads with the character before."""
    category = unicodedata.category(char)
    return category in MODIFIER_CATEGORIES or (category[0] == "C" and char not in "\t\n\r") or char == "\ufffd"


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words and their character spans: runs of letters and digits, single CJK ideographs and single punctuation marks.

    This is how BERT-style tokenizers pre-split text, so word boundaries match the model's: "王明在北京" is five words,
    one per ideograph, as in character-per-line CoNLL data. Invisible characters (:func:`is_invisible`) stay with the
    word they touch instead of becoming words of their own, and letters right after one join its word too: the
    tokenizer deletes a soft hyphen, a zero-width joiner or a control character, so "Mer\u00adkel" and
    "Peter\x07Blackburn" are one word to it, and a decomposed accent splits no word ("Se\u0301gole\u0300ne" is one
    word, as its composed form is). Invisible characters with spaces around them are no word: the tokenizer deletes
    them, so the model never reads them (a form feed between paragraphs, a stray soft hyphen).
    """
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    open_kind = ""  # what the last word is made of, while nothing has closed it: "word", "invisible", "single"
    for match in WORD_PATTERN.finditer(text):
        start, end = match.span()
        kind = match.lastgroup or ("invisible" if is_invisible(match.group()) else "single")
        if kind == "space":
            open_kind = ""
            continue
        extends = (kind == "invisible" and bool(open_kind)) or (kind == "word" and open_kind in ("word", "invisible"))
        if extends:
            spans[-1] = (spans[-1][0], end)
            words[-1] = text[spans[-1][0] : end]
            open_kind = "word" if kind == "word" else open_kind
        else:
            words.append(match.group())
            spans.append((start, end))
            open_kind = "single" if kind == "cjk" else kind
    kept = [i for i, word in enumerate(words) if not only_invisible(word)]  # deleted by the tokenizer: no word at all
    return [words[i] for i in kept], [spans[i] for i in kept]


def only_invisible(text: str) -> bool:
    """Whether ``text`` holds nothing but whitespace and invisible characters (:func:`is_invisible`)."""
    return all(c.isspace() or is_invisible(c) for c in text)


def _json_objects(node: Any) -> list[dict[str, Any]]:
    """Every JSON object in ``node`` (a parsed tokenizer component), nested ones included."""
    if isinstance(node, dict):
        return [node] + [o for value in node.values() for o in _json_objects(value)]
    if isinstance(node, list):
        return [o for value in node for o in _json_objects(value)]
    return []


def needs_prefix_space(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is a byte-level BPE one (RoBERTa, DeBERTa v1, GPT-2) that adds no space before a text.

    Such a tokenizer reads "call" at the start of a text as other pieces than " call" inside it ("c all" against
    "Ġcall"), so words tokenized one by one (``is_split_into_words``) would all be read as text starts.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.pre_tokenizer is None:
        return False
    parts = _json_objects(json.loads(backend.to_str()).get("pre_tokenizer"))
    return any(part.get("type") == "ByteLevel" and part.get("add_prefix_space") is False for part in parts)


def with_prefix_space(tokenizer: Any) -> Any:
    """``tokenizer`` (changed in place) reading each word as if a space came before it, as words come in running text.

    A byte-level BPE tokenizer (:func:`needs_prefix_space`) gets ``add_prefix_space=True`` in its pre-tokenizer and
    post-processor, and in its config, so ``save_pretrained`` writes it and the run reloads the same way (predict,
    export, pipelines). Other tokenizers (WordPiece, SentencePiece) are returned unchanged.
    """
    if not needs_prefix_space(tokenizer):
        return tokenizer
    from tokenizers import Tokenizer

    backend = tokenizer.backend_tokenizer
    state = json.loads(backend.to_str())
    for part in _json_objects(state.get("pre_tokenizer")) + _json_objects(state.get("post_processor")):
        if part.get("add_prefix_space") is False:
            part["add_prefix_space"] = True
    rebuilt = Tokenizer.from_str(json.dumps(state))
    backend.pre_tokenizer = rebuilt.pre_tokenizer
    if rebuilt.post_processor is not None:
        backend.post_processor = rebuilt.post_processor
    tokenizer.add_prefix_space = True
    tokenizer.init_kwargs["add_prefix_space"] = True
    return tokenizer


def word_windows(piece_counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Cut a sentence into [start, end) word windows whose subword counts fit ``budget``.

    A single word longer than the budget gets a window of its own (and is truncated by the tokenizer).
    """
    windows, start, used = [], 0, 0
    for index, count in enumerate(piece_counts):
        count = max(count, 1)
        if used and used + count > budget:
            windows.append((start, index))
            start, used = index, 0
        used += count
    windows.append((start, len(piece_counts)))
    return windows


def document_bounds(documents: Sequence[int], starts: Sequence[int]) -> list[tuple[int, int]]:
    """For each sentence, the [first, last) word positions of its run of sentences with the same document id."""
    bounds: list[tuple[int, int]] = []
    run_start = 0
    for index in range(1, len(documents) + 1):
        if index == len(documents) or documents[index] != documents[run_start]:
            bounds.extend([(starts[run_start], starts[index])] * (index - run_start))
            run_start = index
    return bounds


def context_span(counts: Sequence[int], bound: tuple[int, int], left: int, right: int, budget: int) -> tuple[int, int]:
    """Widen the word span [left, right) by whole words on each side, up to ``budget`` subwords a side, within ``bound``."""
    used = 0
    while left > bound[0] and used + max(counts[left - 1], 1) <= budget:
        left -= 1
        used += max(counts[left], 1)
    used = 0
    while right < bound[1] and used + max(counts[right], 1) <= budget:
        used += max(counts[right], 1)
        right += 1
    return left, right


@dataclass
class TokenClassificationTask(Task):
    """Everything task-specific about fine-tuning a tagger; build one with :func:`build_token_classification_task`."""

    label_all_subwords: bool = False
    document_context: int = 0

    name = "token-classification"
    default_metric = "f1"
    auto_class = AutoModelForTokenClassification

    # ------------------------------------------------------------------ data

    def encode_words(self, sentences: Sequence[Sequence[str]], documents: Sequence[int] | None = None) -> dict[str, list[Any]]:
        """Tokenize word lists into model inputs, windowing long sentences.

        Returns model inputs plus ``word_ids`` (sentence-level word index per subword, -1 for special
        tokens, context and non-first pieces), ``sentence_id`` and ``length`` for each window.
        ``self.truncated`` counts sentences that needed more than one window. With
        ``document_context`` and ``documents`` (a document id per sentence), each window is framed by
        up to that many subwords of the words around it in the same document; those words are read
        but never tagged or scored.
        """
        budget = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        if not self.tokenizer.is_fast:
            raise UserError(f"{self.model_name}: NER needs a fast tokenizer (word alignment); this model has a slow one.")
        flat = [w for words in sentences for w in words]
        counts = [len(ids) for ids in self.tokenizer(flat, add_special_tokens=False)["input_ids"]] if flat else []
        if self.tokenizer.unk_token is not None:  # a word the tokenizer reads as nothing (a lone soft hyphen) would
            flat = [w if n else self.tokenizer.unk_token for w, n in zip(flat, counts, strict=True)]  # get no tag
            counts = [max(n, 1) for n in counts]
        starts = np.cumsum([0] + [len(words) for words in sentences]).tolist()  # sentence -> first index in flat
        context = self.document_context if documents is not None else 0
        bounds = document_bounds(documents, starts) if context else []
        chunks, owners, offsets, lefts, sizes = [], [], [], [], []
        windowed = 0
        for sentence_id, words in enumerate(sentences):
            first = starts[sentence_id]
            windows = word_windows(counts[first : first + len(words)], budget)
            windowed += len(windows) > 1
            for start, end in windows:
                left, right = (first + start, first + end)
                if context:
                    spare = budget - sum(max(c, 1) for c in counts[left:right])
                    left, right = context_span(counts, bounds[sentence_id], left, right, min(context, spare // 2))
                chunks.append(flat[left:right])
                owners.append(sentence_id)
                offsets.append(start)
                lefts.append(first + start - left)  # context words before the window
                sizes.append(end - start)
        encoded = self.tokenizer(chunks, is_split_into_words=True, truncation=True, max_length=self.max_length)
        word_ids, first_ids = [], []
        for row, (offset, skip, size) in enumerate(zip(offsets, lefts, sizes, strict=True)):
            ids = [None if w is None or not skip <= w < skip + size else w - skip for w in encoded.word_ids(row)]
            word_ids.append([-1 if w is None else w + offset for w in ids])
            first_ids.append([w + offset if w is not None and (p == 0 or ids[p - 1] != w) else -1 for p, w in enumerate(ids)])
        columns = dict(encoded)
        columns.update(
            word_ids=word_ids, first_word_ids=first_ids, sentence_id=owners, length=[len(ids) for ids in encoded["input_ids"]]
        )
        self.truncated["windowed_sentences"] = windowed
        return columns

    def preprocess(self, dataset: datasets.Dataset, split: str = "") -> datasets.Dataset:
        """Tokenize ``tokens`` and align ``tags`` to subwords (first piece, or every piece)."""
        sentences = [list(t) for t in dataset["tokens"][:]]  # [:] reads a column at once
        documents = dataset["document"][:] if "document" in dataset.column_names else None
        columns = self.encode_words(sentences, documents)
        if split:
            self.truncated[split] = self.truncated.pop("windowed_sentences")
        if "tags" in dataset.column_names:
            label2id = self.label2id
            tags = [list(t) for t in dataset["tags"][:]]
            labels = []
            for sentence_id, word_ids, first_ids in zip(
                columns["sentence_id"], columns["word_ids"], columns["first_word_ids"], strict=True
            ):
                row = []
                for word, first in zip(word_ids, first_ids, strict=True):
                    if word < 0:
                        row.append(IGNORE)
                    elif first >= 0:
                        row.append(label2id[tags[sentence_id][word]])
                    elif self.label_all_subwords:
                        tag = tags[sentence_id][word]
                        row.append(label2id["I-" + tag[2:] if tag.startswith("B-") else tag])
                    else:
                        row.append(IGNORE)
                labels.append(row)
            columns["labels"] = labels
        return datasets.Dataset.from_dict(columns)

    def collator(self) -> DataCollatorForTokenClassification:
        """Dynamic padding: inputs by the tokenizer, ``labels`` with -100 (transformers' token-classification collator)."""
        return DataCollatorForTokenClassification(self.tokenizer, label_pad_token_id=IGNORE)

    # ------------------------------------------------------------------ model

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over tagged subwords (-100 ignored)."""
        return self.weighted_cross_entropy(logits, labels, ignore_index=IGNORE)

    # ------------------------------------------------------------------ outputs

    def word_predictions(self, logits: np.ndarray, dataset: datasets.Dataset) -> dict[int, dict[int, np.ndarray]]:
        """Per sentence, per word: the softmax over tags at the word's first subword."""
        sentence_ids = dataset["sentence_id"][:]
        first_ids = dataset["first_word_ids"][:]
        words: dict[int, dict[int, np.ndarray]] = {}
        for row, (sentence_id, firsts) in enumerate(zip(sentence_ids, first_ids, strict=True)):
            target = words.setdefault(sentence_id, {})
            for position, word in enumerate(firsts):
                if word >= 0:
                    target[word] = softmax(logits[row, position])
        return words

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: datasets.Dataset | None = None) -> dict[str, Any]:
        """Entity-level precision, recall and F1 (seqeval) on whole sentences of words."""
        if dataset is None:
            raise UserError("NER metrics need the preprocessed dataset (word alignment) to score words.")
        predictions = self.word_predictions(logits, dataset)
        gold: dict[int, dict[int, str]] = {}
        for row, (sentence_id, firsts) in enumerate(zip(dataset["sentence_id"][:], dataset["first_word_ids"][:], strict=True)):
            for position, word in enumerate(firsts):
                if word >= 0:
                    gold.setdefault(sentence_id, {})[word] = self.labels[int(labels[row, position])]
        y_true, y_raw = [], []
        for sentence_id in sorted(gold):
            order = sorted(gold[sentence_id])
            y_true.append([gold[sentence_id][w] for w in order])
            y_raw.append([self.labels[int(predictions[sentence_id][w].argmax())] for w in order])
        return entity_metrics([self.repair(tags) for tags in y_raw], y_true, raw=y_raw)  # accuracy: words tagged right

    def metric_names(self) -> frozenset[str]:
        """The numbers :meth:`compute_metrics` reports (entity-level scores and token accuracy)."""
        return frozenset(scalar_metrics(entity_metrics([["B-X", "O"]], [["B-X", "O"]])))

    @staticmethod
    def repair(tags: Sequence[str]) -> list[str]:
        """Make predicted tags valid IOB2: an I-X that does not continue an X entity starts one."""
        return repaired_iob2(tags)

    def postprocess(
        self, logits: np.ndarray, dataset: datasets.Dataset, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[dict[str, Any]]:
        """Entities per text: ``text``, ``type``, character ``start``/``end`` and mean word ``score`` (:func:`entity_spans`)."""
        predictions = self.word_predictions(logits, dataset)
        results = []
        for sentence_id, (text, word_spans) in enumerate(zip(texts, spans, strict=True)):
            words = predictions.get(sentence_id, {})
            probs = [words[w] for w in range(len(word_spans))]
            tags = self.repair([self.labels[int(p.argmax())] for p in probs])
            scores = [float(p.max()) for p in probs]
            results.append({"text": text, "entities": entity_spans(text, tags, scores, word_spans)})
        return results


def entity_spans(
    text: str, tags: Sequence[str], scores: Sequence[float], word_spans: Sequence[tuple[int, int]]
) -> list[dict[str, Any]]:
    """The entities of ``text`` given its words' IOB2 ``tags``: ``text``, ``type``, ``start``, ``end`` and mean ``score``.

    No word is invisible characters alone (:func:`split_words` leaves those out, as the tokenizer deletes them), so no
    entity begins or ends on one.
    """
    groups: list[tuple[str, list[int]]] = []
    for index, tag in enumerate(tags):
        if tag.startswith("B-"):
            groups.append((tag[2:], [index]))
        elif tag.startswith("I-"):  # repaired IOB2: it always continues the last entity
            groups[-1][1].append(index)
    entities = []
    for kind, indices in groups:
        start, end = word_spans[indices[0]][0], word_spans[indices[-1]][1]
        score = float(np.mean([scores[i] for i in indices]))
        entities.append({"text": text[start:end], "type": kind, "start": start, "end": end, "score": score})
    return entities


def build_token_classification_task(
    *,
    model: str,
    labels: Sequence[str],
    max_length: int = 256,
    label_all_subwords: bool = False,
    document_context: int = 0,
    class_weights: Sequence[float] | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> TokenClassificationTask:
    """A NER task for ``model`` (Hub id or folder) and IOB2 ``labels`` in id order (``O`` first by convention)."""
    resolved, tokenizer = resolve_with_tokenizer(model, trust_remote_code=trust_remote_code, max_length=max_length)
    tokenizer = with_prefix_space(tokenizer)  # byte-level BPE: words encoded as in running text, not as text starts
    return TokenClassificationTask(
        model_path=resolved.path,
        labels=list(labels),
        tokenizer=tokenizer,
        max_length=max_length,
        label_all_subwords=label_all_subwords,
        document_context=document_context,
        class_weights=None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32),
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        model_name=resolved.name,
        model_source=resolved.source,
    )


def ner_from_config(config: RunConfig) -> tuple[TokenClassificationTask, TokenClassificationData]:
    """Read the run's tagged data and build its NER task."""
    if config.training.class_weights == "balanced":
        raise ConfigError("training.class_weights=balanced is for classification tasks; remove it for task=ner.")
    tagged = load_token_classification_data(config.data, seed=config.seed)
    task = build_token_classification_task(
        model=config.model,
        labels=tagged.labels,
        max_length=config.training.max_length,
        label_all_subwords=config.training.label_all_subwords,
        document_context=config.training.document_context,
        trust_remote_code=config.trust_remote_code,
        allow_pickle=config.allow_pickle,
    )
    return task, tagged
