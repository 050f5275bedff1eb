"""Let an uncased WordPiece model see capitals: a cased vocabulary grown from its uncased one.

An uncased tokenizer lowercases its input, so "Apple" and "apple", or "US" and "us", reach the model as
the same ids, and capitalisation is the strongest single cue for a name in English text.
:func:`case_aware_tokenizer` keeps the model's pieces and adds, for each one, its capitalised form
("Paris", "##Donald") and its all-capitals form ("PARIS"), and stops lowercasing. A word written in
lowercase, capitalised or in capitals is cut into the same pieces as before; only the ids say how it
was written. (A capital inside a word, "McDonald", starts a capitalised continuation piece.)

While training, the embedding of a new id is the pretrained embedding of its lowercase piece plus a
learned vector for its case (:class:`CaseAwareEmbedding`), so what the model learns about capitals
reaches every capitalised word, including words it never saw capitalised. Before saving,
:func:`materialize_case_embeddings` writes those sums into an ordinary embedding matrix, so the saved
model and tokenizer are plain Hugging Face ones (``AutoModel...from_pretrained``, ``pipeline``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from nlp_transfer.config import RunConfig, TransferConfig
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.transfer.base import Strategy, TransferExtension

#: Case classes of a vocabulary id: as written in the uncased vocabulary, first letter capital, all capitals.
LOWER, CAPITALISED, ALL_CAPITALS = 0, 1, 2
CONTINUATION = "##"


@dataclass(frozen=True)
class CaseMap:
    """For every id of the cased vocabulary: the uncased id it derives from and its case class."""

    base_ids: list[int]
    case_ids: list[int]

    def __len__(self) -> int:
        return len(self.base_ids)


def _case_forms(piece: str) -> list[tuple[int, str]]:
    """The capitalised and all-capitals forms of a lowercase vocabulary piece that differ from it."""
    body = piece[len(CONTINUATION) :] if piece.startswith(CONTINUATION) else piece
    prefix = piece[: len(piece) - len(body)]
    forms = []
    for case, form in ((CAPITALISED, body[:1].upper() + body[1:]), (ALL_CAPITALS, body.upper())):
        form = prefix + form
        # a form must lowercase back to the piece, letter for letter ("ß".upper() is "SS": skipped)
        if form != piece and len(form) == len(piece) and form.lower() == piece and all(f != form for _, f in forms):
            forms.append((case, form))
    return forms


def _check_uncased_wordpiece(tokenizer: PreTrainedTokenizerBase, spec: dict[str, Any]) -> None:
    model, normalizer = spec.get("model") or {}, spec.get("normalizer") or {}
    if model.get("type") != "WordPiece" or normalizer.get("type") != "BertNormalizer":
        raise UserError(
            f"transfer.case_vocab: the tokenizer of '{tokenizer.name_or_path}' is not a BERT-style WordPiece one "
            f"(model {model.get('type')}, normalizer {normalizer.get('type')}); set transfer.case_vocab=false."
        )
    if not normalizer.get("lowercase"):
        raise UserError(
            f"transfer.case_vocab: '{tokenizer.name_or_path}' is already cased (its tokenizer does not lowercase); "
            "set transfer.case_vocab=false."
        )


def case_aware_tokenizer(tokenizer: PreTrainedTokenizerBase) -> tuple[PreTrainedTokenizerFast, CaseMap]:
    """A cased copy of an uncased WordPiece ``tokenizer`` and the map from its new ids to the old ones.

    Ids below the old vocabulary size keep their meaning; the capitalised and all-capitals forms
    follow. Accents are still stripped, as the uncased tokenizer did.
    """
    if not tokenizer.is_fast:
        raise UserError(f"transfer.case_vocab needs a fast tokenizer; '{tokenizer.name_or_path}' has a slow one.")
    from tokenizers import Tokenizer, models, normalizers

    serialized = tokenizer.backend_tokenizer.to_str()
    spec = json.loads(serialized)
    _check_uncased_wordpiece(tokenizer, spec)
    vocab = dict(spec["model"]["vocab"])
    size = len(vocab)
    base_ids, case_ids = list(range(size)), [LOWER] * size
    special = set(tokenizer.all_special_tokens)
    for piece, index in sorted(vocab.items(), key=lambda item: item[1]):
        if piece in special:
            continue
        for case, form in _case_forms(piece):
            if form not in vocab:
                vocab[form] = len(base_ids)
                base_ids.append(index)
                case_ids.append(case)

    backend = Tokenizer.from_str(serialized)
    old = spec["normalizer"]
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=old.get("clean_text", True),
        handle_chinese_chars=old.get("handle_chinese_chars", True),
        strip_accents=True if old.get("strip_accents") is None else old["strip_accents"],
        lowercase=False,
    )
    backend.model = models.WordPiece(
        vocab,
        unk_token=spec["model"]["unk_token"],
        continuing_subword_prefix=spec["model"]["continuing_subword_prefix"],
        max_input_chars_per_word=spec["model"]["max_input_chars_per_word"],
    )
    cased = type(tokenizer)(
        tokenizer_object=backend,
        do_lower_case=False,
        strip_accents=backend.normalizer.strip_accents,
        model_max_length=tokenizer.model_max_length,
        **tokenizer.special_tokens_map,
    )
    return cased, CaseMap(base_ids=base_ids, case_ids=case_ids)


class CaseAwareEmbedding(nn.Module):
    """Input embeddings of a cased vocabulary: the uncased piece's embedding plus a learned case vector.

    ``base`` is the model's pretrained embedding (uncased ids); ``case`` holds one vector per case
    class, zero at the start, so the model begins exactly as the pretrained one reads lowercase text.
    """

    def __init__(self, base: nn.Embedding, case_map: CaseMap) -> None:
        super().__init__()
        self.base = base
        self.case = nn.Embedding(ALL_CAPITALS + 1, base.embedding_dim, dtype=base.weight.dtype, device=base.weight.device)
        nn.init.zeros_(self.case.weight)
        self.register_buffer("base_ids", torch.tensor(case_map.base_ids, dtype=torch.long), persistent=False)
        self.register_buffer("case_ids", torch.tensor(case_map.case_ids, dtype=torch.long), persistent=False)
        self.num_embeddings = len(case_map)
        self.embedding_dim = base.embedding_dim
        self.padding_idx = base.padding_idx

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embed ids of the cased vocabulary."""
        return self.base(self.base_ids[input_ids]) + self.case(self.case_ids[input_ids])

    def rows(self, base_weight: torch.Tensor, case_weight: torch.Tensor) -> torch.Tensor:
        """The cased embedding matrix (one row per cased id) from piece and case weights (own, or a gathered copy)."""
        return base_weight[self.base_ids.to(base_weight.device)] + case_weight[self.case_ids.to(case_weight.device)]

    @property
    def weight(self) -> torch.Tensor:
        """The full cased embedding matrix, as an ``nn.Embedding`` would hold it."""
        return self.rows(self.base.weight, self.case.weight)


def add_case_embeddings(model: nn.Module, case_map: CaseMap) -> nn.Module:
    """Give ``model`` the cased vocabulary of ``case_map``: its input embeddings become a :class:`CaseAwareEmbedding`."""
    embeddings = model.get_input_embeddings()
    if not isinstance(embeddings, nn.Embedding) or embeddings.num_embeddings <= max(case_map.base_ids):
        raise UserError(
            f"transfer.case_vocab: {type(model).__name__}'s input embeddings do not match its tokenizer "
            f"({getattr(embeddings, 'num_embeddings', '?')} rows); set transfer.case_vocab=false."
        )
    model.set_input_embeddings(CaseAwareEmbedding(embeddings, case_map))
    model.config.vocab_size = len(case_map)
    return model


def materialize_case_embeddings(
    model: nn.Module, state_dict: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor] | None:
    """Turn ``model``'s :class:`CaseAwareEmbedding` back into a plain ``nn.Embedding`` holding the sums.

    With ``state_dict`` (the gathered weights of a sharded run), its factored entries are replaced by
    the plain ``...word_embeddings.weight`` too, and the new dict is returned.
    """
    module = model.get_input_embeddings()
    if not isinstance(module, CaseAwareEmbedding):
        return state_dict
    with torch.no_grad():
        if state_dict is None:
            weight = module.weight
        else:  # the gathered copy: the module's own parameters may be shards
            name = next(n for n, m in model.named_modules() if m is module)
            state_dict = dict(state_dict)
            weight = module.rows(state_dict.pop(f"{name}.base.weight"), state_dict.pop(f"{name}.case.weight"))
            state_dict[f"{name}.weight"] = weight
    frozen = not module.base.weight.requires_grad
    model.set_input_embeddings(nn.Embedding.from_pretrained(weight, freeze=frozen, padding_idx=module.padding_idx))
    return state_dict


class CaseVocabulary(TransferExtension):
    """``transfer.case_vocab``: the run's tokenizer gains cased ids, its embeddings the case vectors.

    Tokenizer and embeddings change before training; before saving, the factored embedding becomes a
    plain one, so the run folder is an ordinary cased model.
    """

    needs_task = True  # the embeddings follow the case-aware tokenizer that prepare_task makes

    def __init__(self, options: TransferConfig | None = None) -> None:
        super().__init__(options)
        self.case_map: CaseMap | None = None

    def check(self, config: RunConfig, strategy: Strategy) -> None:
        """NER only, and only with a strategy that trains the embeddings."""
        if config.task != "ner":
            raise ConfigError(f"transfer.case_vocab is for task=ner; remove it for task={config.task}.")
        if not strategy.trains_embeddings:
            raise ConfigError(
                f"transfer.case_vocab needs the embeddings to train, and strategy={strategy.name} freezes them; "
                "use strategy=full or gradual_unfreezing, or set transfer.case_vocab=false."
            )

    def prepare_task(self, task: Any) -> Any:
        """Give the task the case-aware tokenizer (before any text is tokenized)."""
        task.tokenizer, self.case_map = case_aware_tokenizer(task.tokenizer)
        return task

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Replace the input embeddings with the factored, case-aware ones."""
        if self.case_map is None:
            raise UserError("transfer.case_vocab: the task must be prepared (its tokenizer made case-aware) before the model.")
        return add_case_embeddings(model, self.case_map)

    def before_save(self, model: nn.Module, state_dict: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """Write the sums into a plain embedding matrix (and into the gathered state dict of a sharded run)."""
        return materialize_case_embeddings(model, state_dict)
