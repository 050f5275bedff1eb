"""Token classification rows: sentences with a tag per token (IOB2), from CoNLL, json/jsonl or a Hub dataset.

:class:`TaggedRows` is the row reader :func:`~nlp_transfer.data.loading.load_splits` calls for NER (columns
``tokens``, ``tags``, ``line``, ``document``); a held-out validation split keeps whole documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

from nlp_transfer.config import DataConfig
from nlp_transfer.data.conll import (
    TaggedFile,
    TaggedSentence,
    check_scheme_tags,
    entity_types,
    normalise_file,
    read_conll,
    read_tagged_json,
    tag_names,
)
from nlp_transfer.data.loading import class_names, load_splits, require_columns
from nlp_transfer.data.readers import infer_format
from nlp_transfer.errors import DataError

TAGGED_FEATURES = datasets.Features(
    {
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.Value("string")),
        "line": datasets.Value("int64"),
        "document": datasets.Value("int64"),
    }
)

#: how to fix a Hub dataset whose tags (or ClassLabel names) are not IOB/BIOES tags
HUB_TAG_HINT = (
    " Set data.label_column to a column of IOB/BIOES tags, or convert the tags (a plain type such as 'person' becomes B-person and I-person)"
    " and train from a JSONL file of them."
)


class TaggedRows:
    """Rows of token classification: sentences with a tag per token, normalised to IOB2."""

    features = TAGGED_FEATURES

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.schemes: dict[str, str] = {}  # source -> the scheme its tags were written in

    def read_file(self, path: str) -> list[TaggedSentence]:
        """The sentences of a conll/json/jsonl file."""
        tagged = read_tagged_file(path, self.config)
        self.schemes[str(path)] = tagged.scheme
        return tagged.sentences

    def read_hub(self, part: datasets.Dataset, where: str) -> list[TaggedSentence]:
        """The sentences of a Hub split; each is its own document (Hub datasets carry no document marks).

        Every tag (or ClassLabel name) must be in the IOB/BIOES scheme; the first that is not is a DataError naming the
        dataset, split and row.
        """
        tokens_field = "tokens" if self.config.text_column == "text" else self.config.text_column
        tags_field = "ner_tags" if self.config.label_column == "label" else self.config.label_column
        require_columns(where, part.column_names, {"data.text_column": tokens_field, "data.label_column": tags_field})
        names = class_names(part.features[tags_field])
        items = [
            TaggedSentence(
                list(row[tokens_field]), [names[t] for t in row[tags_field]] if names else list(row[tags_field]), i + 1, i
            )
            for i, row in enumerate(part)
        ]
        check_scheme_tags(items, where, HUB_TAG_HINT)  # a plain tag ("person") would be cut up as if it were "p-rson"
        tagged = normalise_file(TaggedFile(items), where, self.config.tag_scheme)
        self.schemes[where] = tagged.scheme
        return tagged.sentences

    def check_labels(self, splits: dict[str, list[TaggedSentence]], sources: dict[str, str]) -> list[str]:
        """Tag names from data.labels or the training split's entity types; other splits must fit."""
        types = entity_types(splits["train"])
        names = self.config.labels or tag_names(types)
        known = set(names)
        for split, sentences in splits.items():
            for sentence in sentences:
                unknown = sentence.first_unknown(known)
                if unknown:
                    raise DataError(
                        f"{sources[split]}:{unknown[1]}: tag '{unknown[0]}' was not seen in the training data "
                        f"(types: {', '.join(types)}). Fix the tag, or list every tag in data.labels."
                    )
        return list(names)

    def hold_out_keys(self, rows: list[TaggedSentence]) -> tuple[None, list[int]]:
        """Documents stay whole: validation never shares an article with training."""
        return None, [s.document for s in rows]


@dataclass
class TokenClassificationData:
    """NER splits (columns ``tokens``, ``tags`` in IOB2, ``line``, ``document``), the tag names in id order, sources.

    ``repaired_tags`` counts, per split, the gold I- tags that began an entity and were read as B-.
    """

    splits: datasets.DatasetDict
    labels: list[str]
    scheme: str = "iob2"
    sources: dict[str, str] = field(default_factory=dict)
    repaired_tags: dict[str, int] = field(default_factory=dict)


def read_tagged_file(path: str, config: DataConfig) -> TaggedFile:
    """One token-tagged file (conll, json or jsonl) with tags normalised to IOB2."""
    fmt = infer_format(path, config.format)
    if fmt == "conll":
        return read_conll(
            path,
            token_column=config.token_column,
            tag_column=config.tag_column,
            encoding=config.encoding,
            scheme=config.tag_scheme,
        )
    if fmt in ("json", "jsonl"):
        tokens_field = "tokens" if config.text_column == "text" else config.text_column
        tags_field = "tags" if config.label_column == "label" else config.label_column
        return read_tagged_json(
            path, fmt=fmt, tokens_field=tokens_field, tags_field=tags_field, encoding=config.encoding, scheme=config.tag_scheme
        )
    raise DataError(f"{path}: NER reads conll, json or jsonl files (or format=hub), not {fmt}. Set data.format.")


def load_token_classification_data(config: DataConfig, *, seed: int = 42) -> TokenClassificationData:
    """Read train/validation/test token-tagged data; hold out whole documents for validation when none is given."""
    reader = TaggedRows(config)
    loaded = load_splits(config, reader, seed=seed)
    repaired = {split: sum(s.repaired for s in sentences) for split, sentences in loaded.rows.items()}
    scheme = reader.schemes.get(loaded.sources["train"], "iob2")
    return TokenClassificationData(loaded.to_datasets(reader.features), loaded.labels, scheme, loaded.sources, repaired)
