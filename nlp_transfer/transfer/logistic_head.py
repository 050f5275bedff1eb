"""A head fitted to convergence: L2-penalised logistic regression on cached, mean-pooled features.

``transfer.head_fit=logistic`` (strategies that cache features: ``frozen``, ``contrastive``) replaces the
head's training steps with one convex solve, as SetFit fits scikit-learn's ``LogisticRegression`` on its
embeddings. The objective is scikit-learn's: ``C`` times the summed cross-entropy (softmax over the classes;
one sigmoid a label for ``multilabel``) plus half the squared norm of the weights, the bias unpenalised
(``transfer.head_c`` is ``C``). L-BFGS with a strong Wolfe line search solves it in float64 on the CPU, so
every process finds the same weights; process 0's are broadcast all the same.

The classifier reads the encoder's vector directly: a BERT-style pooler (dense + tanh) is set to a scaled
identity, ``tanh(s x)`` with ``s`` small enough that ``tanh`` is linear to within 1e-4 on the training
features, and the fitted weights are divided by ``s``. The saved model stays a plain sequence classifier.
Heads without a dense + tanh pooler (RoBERTa, DistilBERT, DeBERTa) are refused with the setting to use.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from nlp_transfer.errors import ConfigError

#: largest |s x| on the training features: tanh(u) = u (1 - u^2/3 + ...), so the relative error stays below 1e-4
LINEAR_RANGE = 0.01


def tanh_pooler(model: nn.Module) -> nn.Module:
    """The model's BERT-style pooler (a ``dense`` layer, then ``nn.Tanh``), or a ConfigError naming the fix."""
    pooler = getattr(model, "pooler", None) or getattr(model.base_model, "pooler", None)
    if pooler is None or not isinstance(getattr(pooler, "activation", None), nn.Tanh) or not hasattr(pooler, "dense"):
        raise ConfigError(
            f"transfer.head_fit=logistic fits heads whose pooler is dense + tanh (BERT-family models, the default "
            f"one among them); {type(model).__name__} has another head. Use transfer.head_fit=steps."
        )
    return pooler


def solve_logistic(
    features: torch.Tensor, labels: torch.Tensor, n_outputs: int, c: float, multi_label: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (outputs, width) and bias minimising ``c * sum(loss) + |W|^2 / 2`` on ``features`` (float64, L-BFGS).

    ``labels``: class ids, or for ``multi_label`` a 0/1 matrix (rows, outputs) with one sigmoid loss a label.
    """
    x = features.detach().to("cpu", torch.float64)
    y = labels.detach().to("cpu", torch.float64 if multi_label else torch.long)
    weight = torch.zeros(n_outputs, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_outputs, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=2000,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum") if multi_label else nn.CrossEntropyLoss(reduction="sum")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        value = (c * loss_fn(x @ weight.T + bias, y) + 0.5 * weight.pow(2).sum()) / len(x)  # scaled: same minimum
        value.backward()
        return value

    optimizer.step(objective)
    return weight.detach(), bias.detach()


def check_head_fits(model: nn.Module, head_fit: str) -> None:
    """Refuse (before any training) a model whose head ``transfer.head_fit=logistic`` cannot fit."""
    if head_fit == "logistic":
        tanh_pooler(model)


def fit_logistic_head(
    model: nn.Module, features: torch.Tensor, labels: torch.Tensor, c: float, multi_label: bool, accelerator: Any
) -> float:
    """Fit ``model``'s classifier on ``features`` (the pooler passing them through); the seconds it took."""
    started = time.perf_counter()
    pooler, classifier = tanh_pooler(model), model.classifier
    weight, bias = solve_logistic(features, labels, classifier.out_features, c, multi_label)
    scale = LINEAR_RANGE / max(float(features.abs().max()), 1e-12)
    with torch.no_grad():
        dense = pooler.dense
        dense.weight.copy_(torch.eye(dense.out_features, dense.in_features) * scale)
        dense.bias.zero_()
        classifier.weight.copy_(weight / scale)
        classifier.bias.copy_(bias)
        for tensor in (dense.weight, classifier.weight, classifier.bias):
            tensor.copy_(broadcast_from_first(accelerator, tensor))
    return time.perf_counter() - started


def broadcast_from_first(accelerator: Any, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as process 0 holds it (itself when one process runs)."""
    if accelerator.num_processes == 1:
        return tensor
    from accelerate.utils import broadcast

    return broadcast(tensor.to(accelerator.device).contiguous(), from_process=0).to(tensor.device)
