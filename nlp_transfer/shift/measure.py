"""``domain_shift``: every measure of how far a target text set is from a source text set, in one report.

This is the library entry point (``nlp-transfer shift`` and, later, ``nlp-transfer check --drift`` call it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.errors import UserError, refuse_one_string
from nlp_transfer.shift.domain import FOLDS, MIN_TEXTS_PER_SIDE, domain_classifier
from nlp_transfer.shift.labels import label_shift
from nlp_transfer.shift.vocabulary import tokenizer_view, vocabulary_overlap

DEFAULT_SAMPLE = 1000


@dataclass
class ShiftReport:
    """The figures of one source -> target comparison; :meth:`to_dict` is what ``shift.json`` holds."""

    source: str
    target: str
    model: str
    texts: dict[str, int]  # how many each side had and how many were compared
    domain_classifier_accuracy: float
    fold_accuracies: list[float]
    proxy_a_distance: float
    vocabulary: dict[str, Any]
    tokenizer: dict[str, dict[str, Any]]
    label_shift: dict[str, Any] | None = None
    # per compared text, for the plot (not in the JSON): lengths, held-out target probability, 2-D projection
    lengths: dict[str, list[int]] = field(default_factory=dict, repr=False)
    target_probability: np.ndarray | None = field(default=None, repr=False)
    projection: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready data (the per-text arrays left out)."""
        return {
            "source": self.source,
            "target": self.target,
            "model": self.model,
            "texts": self.texts,
            "domain_classifier_accuracy": self.domain_classifier_accuracy,
            "domain_classifier": {"folds": len(self.fold_accuracies), "fold_accuracies": self.fold_accuracies},
            "proxy_a_distance": round(self.proxy_a_distance, 6),
            "vocabulary": self.vocabulary,
            "tokenizer": self.tokenizer,
            "label_shift": self.label_shift,
        }


def draw_sample(texts: Sequence[str], size: int, seed: int) -> list[str]:
    """``size`` texts drawn without replacement with ``seed`` (all of them, in order, when there are no more)."""
    if len(texts) <= size:
        return list(texts)
    return random.Random(seed).sample(list(texts), size)


def check_enough(texts: Sequence[str], name: str, sample: int, parameter: str = "texts") -> None:
    """Refuse one string given for a side's texts (read as its characters), or fewer texts than the classifier's folds need.

    ``parameter`` is the argument of :func:`domain_shift` that held ``texts``, named in the error.
    """
    refuse_one_string(texts, parameter)
    if sample < MIN_TEXTS_PER_SIDE:
        raise UserError(
            f"sample={sample} (--sample {sample}): the domain classifier needs at least {MIN_TEXTS_PER_SIDE} texts a side. Raise it."
        )
    if len(texts) < MIN_TEXTS_PER_SIDE:
        raise UserError(
            f"{name}: {len(texts)} text(s); the domain classifier ({FOLDS}-fold) needs at least {MIN_TEXTS_PER_SIDE} "
            "on each side. Give more texts."
        )


def domain_shift(
    source_texts: Sequence[str],
    target_texts: Sequence[str],
    *,
    model: str | None = None,
    encoder: Any = None,
    run_dir: str | Path | None = None,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    batch_size: int = 64,
    source_name: str = "source",
    target_name: str = "target",
) -> ShiftReport:
    """How far ``target_texts`` are from ``source_texts``.

    Both sides are sampled to the same size (at most ``sample``), so that the classifier's chance level is
    0.5 and vocabulary figures compare like with like. Embeddings come from ``encoder`` (an already loaded
    :class:`~nlp_transfer.shift.embed.Encoder`, to reuse across calls) or ``model`` (Hub id or folder;
    default: the run's own encoder with ``run_dir``, else the packaged all-MiniLM-L6-v2). With ``run_dir``
    (a saved classification run) the report also gives how its predicted labels move from source to target.
    """
    check_enough(source_texts, source_name, sample, "source_texts")
    check_enough(target_texts, target_name, sample, "target_texts")
    size = min(sample, len(source_texts), len(target_texts))
    source, target = draw_sample(source_texts, size, seed), draw_sample(target_texts, size, seed)
    encoder, run = _encoders(model, encoder, run_dir)
    from nlp_transfer.shift.embed import embed_texts

    vectors = [embed_texts(encoder, side, batch_size=batch_size) for side in (source, target)]
    classifier = domain_classifier(*vectors, seed=seed, texts=[*source, *target])
    source_view, source_lengths = tokenizer_view(encoder.tokenizer, source)
    target_view, target_lengths = tokenizer_view(encoder.tokenizer, target)
    return ShiftReport(
        source=source_name,
        target=target_name,
        model=encoder.name,
        texts={"source": len(source_texts), "target": len(target_texts), "compared_per_side": size},
        domain_classifier_accuracy=classifier.accuracy,
        fold_accuracies=classifier.fold_accuracies,
        proxy_a_distance=classifier.proxy_a_distance,
        vocabulary=vocabulary_overlap(source, target),
        tokenizer={"source": source_view, "target": target_view},
        label_shift=_label_shift(run, source, target, batch_size) if run is not None else None,
        lengths={"source": source_lengths, "target": target_lengths},
        target_probability=classifier.target_probability,
        projection=project_2d(np.concatenate(vectors)),
    )


def _encoders(model: str | None, encoder: Any, run_dir: str | Path | None) -> tuple[Any, tuple[Any, Any] | None]:
    """The embedding encoder (given, ``model``'s, the run's, or the default) and, with ``run_dir``, the loaded run."""
    from nlp_transfer.shift.embed import load_encoder, run_encoder

    run = None
    if run_dir is not None:
        from nlp_transfer.inference import load_run

        run = load_run(run_dir)
    if encoder is None:
        encoder = run_encoder(*run, run_dir) if run is not None and model is None else load_encoder(model)
    return encoder, run


def _label_shift(run: tuple[Any, Any], source: list[str], target: list[str], batch_size: int) -> dict[str, Any] | None:
    """The run's predicted-label shares on each side (None for a tagger, whose predictions are entities)."""
    from nlp_transfer.inference import predict_texts
    from nlp_transfer.tasks.token_classification import TokenClassificationTask

    model, task = run
    if isinstance(task, TokenClassificationTask):
        return None
    predicted = [[row["label"] for row in predict_texts(model, task, side, batch_size=batch_size)] for side in (source, target)]
    return label_shift(predicted[0], predicted[1], list(task.labels))


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """The vectors' first two principal components (for the plot)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(vectors.astype(np.float64))
