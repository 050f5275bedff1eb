"""The run report (RUN_DIR/run_info.json) as a typed record, written by a run and read by inference and the Hub card."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import types
import typing
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError

RUN_INFO_FILE = "run_info.json"
LIBRARIES = ("nlp-transfer", "torch", "transformers", "datasets", "accelerate", "evaluate", "peft", "tokenizers", "scikit-learn")


@dataclass
class RunInfo:
    """Facts about one run: what it trained, how, on which data, and what it took."""

    task: str = ""
    strategy: str = ""
    base_model: str = ""
    labels: list[str] = field(default_factory=list)
    max_length: int | None = None
    from_scratch: bool = False
    base_model_source: str = ""
    threshold: float | None = None  # multi-label runs: the score a label needs
    document_context: int = 0  # NER: subwords of neighbouring sentences read as context
    trainable_parameters: int = 0
    total_parameters: int = 0
    trainable_parameters_last_epoch: int = 0  # gradual unfreezing trains more of the model each epoch
    learning_rates: dict[str, float] = field(default_factory=dict)  # peak rate per block (layer-wise decay), "all" without
    pooling: str | None = None
    cached_features: bool = False
    feature_encoding_seconds: dict[str, float] = field(default_factory=dict)
    head_fit: str = "steps"  # cached features: steps of the loop, or logistic (one convex solve, transfer.head_fit)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)  # a strategy's phases before the head (contrastive pairs)
    best_step: int = 0
    best_metric: dict[str, float | None] = field(default_factory=dict)
    global_steps: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    train_samples_per_second: float = 0.0
    examples: dict[str, int] = field(default_factory=dict)
    truncated_texts: dict[str, int] = field(default_factory=dict)
    repaired_tags: dict[str, int] = field(default_factory=dict)  # NER: stray I- tags read as B- per split
    augmented_examples: dict[str, int] = field(default_factory=dict)  # data.augment: training rows each augmenter added
    pseudo_labeled_examples: int = 0  # data.pseudo_labeled_file: machine-labelled training rows
    label_examples: int = 0  # data.label_examples: training rows written from the label names
    self_training: dict[str, Any] = field(default_factory=dict)  # data.unlabeled_file: the rounds, their pseudo-labels
    data_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    num_processes: int = 1
    mixed_precision: str = "no"
    first_position_only: bool = False  # training.skip_unread_positions took effect: the last layer computed position 0
    fast_dropout_masks: bool = False  # training.fast_dropout_masks took effect: masks from numpy's PCG64, not torch
    strategy_facts: dict[str, Any] = field(default_factory=dict)  # a strategy's own run_info() keys that have no field here

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunInfo:
        """A record from saved data; keys it does not know (older or newer runs) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def read(cls, run_dir: str | Path) -> RunInfo:
        """The record of ``run_dir`` (an empty one when the run has none, e.g. a model folder from elsewhere)."""
        path = Path(run_dir) / RUN_INFO_FILE
        if not path.is_file():
            return cls()
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: not valid JSON ({err}). Restore it from a copy of the run, or delete it.") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: holds a JSON {type(values).__name__}, not an object. Restore it, or delete it.")
        check_field_types(values, path)
        return cls.from_dict(values)

    def write(self, run_dir: str | Path) -> None:
        """Write RUN_DIR/run_info.json, whole or not at all (a run counts as finished once it is there)."""
        from nlp_transfer.files import write_text_atomic

        write_text_atomic(Path(run_dir) / RUN_INFO_FILE, json.dumps(self.to_dict(), indent=2))


#: the JSON types a RunInfo field's annotation admits (int where a float goes: JSON writes 1.0 as 1 in places)
JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}


def check_field_types(values: dict[str, Any], path: Path) -> None:
    """Refuse a known field whose value has another JSON type than its annotation (``"max_length": "abc"``)."""
    hints = typing.get_type_hints(RunInfo)
    for key, value in values.items():
        if key not in hints or value is None:
            continue
        allowed = tuple(t for name in _type_names(hints[key]) for t in JSON_TYPES.get(name, (object,)))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise UserError(
                f"{path}: {key} holds {value!r}, where a run writes {' or '.join(_type_names(hints[key]))}. Restore the file."
            )


def _type_names(annotation: Any) -> list[str]:
    """``int | None`` -> ["int"]; ``dict[str, int]`` -> ["dict"]; ``Any`` -> ["Any"]."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    return [getattr(typing.get_origin(a) or a, "__name__", str(a)) for a in args if a is not type(None)]


def training_facts(result: Any) -> dict[str, Any]:
    """The :class:`RunInfo` fields a finished ``training.loop.fit`` gives (``result``: its ``FitResult``)."""
    return {
        "best_step": result.best_step,
        "best_metric": {result.metric_name: result.best_metric},
        "global_steps": result.global_step,
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.train_seconds, 2),
        "train_samples_per_second": round(result.train_samples_per_second, 2),
        "history": result.history,
        "fast_dropout_masks": result.fast_dropout_masks,
    }


def data_provenance(files: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    """Path, size and sha256 of each local data file (split name -> path); other names (Hub datasets) as given. A
    comma-separated list of files (``adapt``) gets their total size and one sha256 over theirs, in order."""
    found = {}
    for split, path in files.items():
        parts = [part.strip() for part in str(path or "").split(",") if part.strip()]
        if path and Path(path).is_file():
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            found[split] = {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": digest}
        elif len(parts) > 1 and all(Path(part).is_file() for part in parts):  # adapt's list of files: one fingerprint
            digests = "".join(hashlib.sha256(Path(part).read_bytes()).hexdigest() for part in parts)
            total = sum(Path(part).stat().st_size for part in parts)
            found[split] = {"path": str(path), "bytes": total, "sha256": hashlib.sha256(digests.encode()).hexdigest()}
        elif path:
            found[split] = {"name": str(path)}
    return found


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
