"""The code snippets of a model card: how to load the pushed model or adapter, with and without nlp-transfer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nlp_transfer.hub.files import public_name
from nlp_transfer.run_info import RunInfo


def _adapter_usage(repo_id: str, info: RunInfo, pipeline_tag: str) -> str:
    """How to load a LoRA adapter repository on its base model with ``peft``."""
    labels = [str(label) for label in info.labels or []]
    base = public_name(str(info.base_model)) if info.base_model else "BASE_MODEL"  # a local folder: its name only
    auto = "AutoModelForTokenClassification" if pipeline_tag == "token-classification" else "AutoModelForSequenceClassification"
    id2label = {i: label for i, label in enumerate(labels)}
    problem = ', problem_type="multi_label_classification"' if info.task == "multilabel" else ""
    return (
        "This repository holds a LoRA adapter; load it on its base model with `peft`:\n\n"
        "```python\n"
        "from peft import PeftModel\n"
        f"from transformers import {auto}, AutoTokenizer, pipeline\n\n"
        f"id2label = {_q(id2label)}\n"
        f"base = {auto}.from_pretrained(\n"
        f"    {_q(base)}, num_labels={len(labels)}, id2label=id2label, label2id={{v: k for k, v in id2label.items()}}"
        f"{problem}\n"
        ")\n"
        f"model = PeftModel.from_pretrained(base, {_q(repo_id)}).merge_and_unload()\n"
        f"tokenizer = AutoTokenizer.from_pretrained({_q(repo_id)})\n"
        f"classifier = pipeline({_q(pipeline_tag)}, model=model, tokenizer=tokenizer{_pipeline_options(info, pipeline_tag)})\n"
        "```\n"
    )


#: subwords that each window of the NER pipeline repeats from the window before it: with a ``stride`` the pipeline
#: reads a text past the tokenizer's maximum length in overlapping windows, as nlp-transfer windows long sentences;
#: without one it silently drops the end of the text
NER_PIPELINE_STRIDE = 32


def _pipeline_options(info: RunInfo, pipeline_tag: str) -> str:
    """The ``pipeline`` arguments that make it score as the run does: texts cut at the run's max_length, every label's
    sigmoid for multi-label, whole words and every word of a long text for NER (the same whether the repository holds
    the model or an adapter)."""
    if pipeline_tag == "token-classification":
        return f', aggregation_strategy="first", stride={NER_PIPELINE_STRIDE}'
    # cut texts where the run cut them: a pipeline cuts nothing, so a longer text scored otherwise (or failed past 512)
    cut = f", truncation=True, max_length={info.max_length}" if info.max_length else ", truncation=True"
    return (', top_k=None, function_to_apply="sigmoid"' if info.task == "multilabel" else "") + cut


def _model_usage(repo_id: str, info: RunInfo, pipeline_tag: str) -> str:
    """How to run a full-model repository with a ``transformers`` pipeline, or with nlp-transfer."""
    extra = _pipeline_options(info, pipeline_tag)
    example = (
        "Hugging Face released a new library in Paris."
        if pipeline_tag == "token-classification"
        else "The room was spotless and the staff were lovely."
    )
    return (
        "With `transformers` alone:\n\n"
        "```python\n"
        "from transformers import pipeline\n\n"
        f"classifier = pipeline({_q(pipeline_tag)}, model={_q(repo_id)}{extra})\n"
        f"classifier({_q(example)})\n"
        "```\n\n"
        "With nlp-transfer (downloads the repository first):\n\n"
        "```python\n"
        "from huggingface_hub import snapshot_download\n"
        "from nlp_transfer import predict\n\n"
        f"predict(snapshot_download({_q(repo_id)}), [{_q(example)}])\n"
        "```\n"
    )


#: how each architecture's sequence-classification head reads one vector per text (``mean``: the pooled states)
MEAN_HEADS = {
    "distilbert": "model.classifier(torch.relu(model.pre_classifier(mean)))",
    "roberta": "model.classifier(mean[:, None])",
    "xlm-roberta": "model.classifier(mean[:, None])",
    "camembert": "model.classifier(mean[:, None])",
    "electra": "model.classifier(mean[:, None])",
    "mpnet": "model.classifier(mean[:, None])",  # its head reads the first position itself; the encoder has no pooler
    "albert": "model.classifier(model.base_model.pooler_activation(model.base_model.pooler(mean)))",  # dense, then tanh
    "deberta-v2": "model.classifier(model.pooler(mean[:, None]))",
    "deberta": "model.classifier(model.pooler(mean[:, None]))",
}


BERT_MEAN_HEAD = "model.classifier(model.base_model.pooler(mean[:, None]))"


def _mean_pooled_usage(repo_id: str, info: RunInfo, model_type: str) -> str:
    """How to run a model whose head reads the mean of the token states, with ``transformers`` and ``torch`` alone."""
    head = MEAN_HEADS.get(model_type, BERT_MEAN_HEAD)
    if info.task == "multilabel":
        decide = f"    scores = logits.sigmoid()\n    return [[model.config.id2label[j] for j, s in enumerate(row) if s >= {info.threshold or 0.5}] for row in scores.tolist()]\n"
    else:
        decide = "    return [model.config.id2label[i] for i in logits.argmax(-1).tolist()]\n"
    return (
        "The classifier reads the **mean of the token states** (not the first token, which `pipeline` would give it). "
        "With `transformers` and `torch` alone:\n\n"
        "```python\n"
        "import torch\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
        f"tokenizer = AutoTokenizer.from_pretrained({_q(repo_id)})\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({_q(repo_id)}).eval()\n\n\n"
        "@torch.no_grad()\n"
        "def classify(texts):\n"
        f'    batch = tokenizer(texts, padding=True, truncation=True, max_length={info.max_length or 256}, return_tensors="pt")\n'
        "    states = model.base_model(**batch).last_hidden_state\n"
        '    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)\n'
        "    mean = (states * mask).sum(1) / mask.sum(1)\n"
        f"    logits = {head}\n"
        f"{decide}\n\n"
        'print(classify(["The room was spotless and the staff were lovely."]))\n'
        "```\n"
    )


def run_mask_token(run_dir: str | Path) -> str | None:
    """The mask token the tokenizer saved in ``run_dir`` names (``<mask>`` for RoBERTa, ``[MASK]`` for BERT), or None
    when its tokenizer files name none or cannot be read."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = Path(run_dir) / name
        try:
            token = json.loads(path.read_text(encoding="utf-8")).get("mask_token") if path.is_file() else None
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(token, dict):  # an AddedToken as saved by older transformers
            token = token.get("content")
        if isinstance(token, str) and token:
            return token
    return None


def _adapted_usage(repo_id: str, mask_token: str | None = None) -> str:
    """How to use an encoder that ``nlp-transfer adapt`` further pretrained: fill masks, or fine-tune it.

    The example holds the tokenizer's own ``mask_token`` (see :func:`run_mask_token`); without it the snippet asks the
    pipeline's tokenizer for its mask token, which is right for any model.
    """
    sentence = "The blender was {} and easy to clean."
    if mask_token:
        call = f"fill({_q(sentence.format(mask_token))})"
    else:
        call = "fill(" + "f" + _q(sentence.format("{fill.tokenizer.mask_token}")) + ")"
    return (
        "An encoder for fine-tuning, not a classifier. Its masked-LM head fills masks:\n\n"
        "```python\n"
        "from transformers import pipeline\n\n"
        f'fill = pipeline("fill-mask", model={_q(repo_id)})\n'
        f"{call}\n"
        "```\n\n"
        f"Fine-tune it as any model: `AutoModelForSequenceClassification.from_pretrained({_q(repo_id)}, num_labels=N)`, "
        f"or `model: {repo_id}` in an nlp-transfer config.\n"
    )


def _q(value: Any) -> str:
    """A Python literal with double quotes, for the code snippets of the card."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def usage_snippet(
    repo_id: str, info: RunInfo, pipeline_tag: str, adapter: bool, model_type: str = "bert", mask_token: str | None = None
) -> str:
    """The card's code snippets: the adapter's, a mean-pooled model's, an adapted encoder's, or the full model's.

    ``mask_token``: the run's tokenizer's (:func:`run_mask_token`), written into an adapted encoder's fill-mask example.
    """
    if info.task == "masked-lm":
        return _adapted_usage(repo_id, mask_token)
    if adapter:
        return _adapter_usage(repo_id, info, pipeline_tag)
    if info.pooling == "mean":
        return _mean_pooled_usage(repo_id, info, model_type)
    return _model_usage(repo_id, info, pipeline_tag)
