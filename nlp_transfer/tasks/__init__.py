"""Tasks: label schema, preprocessing, collator, model head, loss, metrics, post-processing.

``TASKS`` maps a config's ``task:`` to a builder ``(config) -> (task, data)`` that reads the run's data
and builds the task for it; :func:`register_task` adds one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nlp_transfer.config import RunConfig
from nlp_transfer.errors import ConfigError
from nlp_transfer.tasks.base import Task
from nlp_transfer.tasks.classification import (
    SequenceClassificationTask,
    balanced_class_weights,
    build_classification_task,
    classification_from_config,
)
from nlp_transfer.tasks.token_classification import TokenClassificationTask, build_token_classification_task, ner_from_config

TaskBuilder = Callable[[RunConfig], tuple[Task, Any]]

#: ``task:`` name -> builder of the task and its data
TASKS: dict[str, TaskBuilder] = {
    "classification": classification_from_config,
    "multilabel": classification_from_config,
    "ner": ner_from_config,
}


def register_task(name: str, builder: TaskBuilder) -> None:
    """Make ``task: name`` build its task and data with ``builder``."""
    TASKS[name] = builder


def build_task_and_data(config: RunConfig) -> tuple[Task, Any]:
    """Read and check the run's data, then build the task for it (label schema from the training split)."""
    if config.task not in TASKS:
        raise ConfigError(f"task '{config.task}' is unknown; choose one of {', '.join(TASKS)}.")
    return TASKS[config.task](config)


__all__ = [
    "TASKS",
    "SequenceClassificationTask",
    "Task",
    "TokenClassificationTask",
    "balanced_class_weights",
    "build_classification_task",
    "build_task_and_data",
    "build_token_classification_task",
    "register_task",
]
