"""Push a finished run to the Hugging Face Hub, with a generated model card.

``push_run`` uploads a run directory (the merged/plain model, or the LoRA adapter) as ONE commit;
``build_model_card`` writes its README.md from run_info.json, metrics.json and config.yaml.
The token comes from the argument, ``HF_TOKEN`` or the login cache (``huggingface_hub.get_token``);
it is never read from or written to a file of the run, and never printed.
The endpoint follows ``HF_ENDPOINT`` (read by huggingface_hub when it is imported).

The modules: ``files`` (what of a run is uploaded), ``usage`` (the card's loading snippets), ``card``
(the model card), ``push`` (the upload).
"""

from __future__ import annotations

from nlp_transfer.hub.card import METRIC_NAMES, PIPELINE_TAGS, build_model_card, check_card_metadata
from nlp_transfer.hub.files import (
    ADAPTER_FILES,
    EXCLUDED_PATTERNS,
    HF_TOKEN_RE,
    REPO_ID_RE,
    RUN_FILES,
    SECRET_KEY_RE,
    STALE_PATTERNS,
    TOKENIZER_PATTERNS,
    WEIGHT_PATTERNS,
    PushError,
    collect_files,
    resolve_mode,
)
from nlp_transfer.hub.push import COMMIT_ATTEMPTS, RETRY_WAIT_SECONDS, PushMode, push_configured_run, push_run, resolve_token
from nlp_transfer.hub.usage import BERT_MEAN_HEAD, MEAN_HEADS

__all__ = [
    "ADAPTER_FILES",
    "BERT_MEAN_HEAD",
    "COMMIT_ATTEMPTS",
    "EXCLUDED_PATTERNS",
    "HF_TOKEN_RE",
    "MEAN_HEADS",
    "METRIC_NAMES",
    "PIPELINE_TAGS",
    "REPO_ID_RE",
    "RETRY_WAIT_SECONDS",
    "RUN_FILES",
    "SECRET_KEY_RE",
    "STALE_PATTERNS",
    "TOKENIZER_PATTERNS",
    "WEIGHT_PATTERNS",
    "PushError",
    "PushMode",
    "build_model_card",
    "check_card_metadata",
    "collect_files",
    "push_configured_run",
    "push_run",
    "resolve_mode",
    "resolve_token",
]
