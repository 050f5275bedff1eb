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
    """Make ``task: name`` build its task and data with ``builder``.

    A name already taken by another builder is refused (a plugin would otherwise replace a task without a word); the
    same function defined again (a module reloaded) replaces itself.
    """
    taken = TASKS.get(name)
    if taken is not None and _where(taken) != _where(builder):
        raise ValueError(
            f"task {name!r} is already registered by {_where(taken)}; register {_where(builder)} under another name."
        )
    TASKS[name] = builder


def _where(builder: TaskBuilder) -> str:
    """``module.qualname`` of a builder."""
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', repr(builder))}"


def build_task_and_data(config: RunConfig) -> tuple[Task, Any]:
    """Read and check the run's data, then build the task for it (label schema from the training split)."""
    if config.task not in TASKS:
        raise ConfigError(f"task '{config.task}' is unknown; choose one of {', '.join(TASKS)}.")
    task, data = TASKS[config.task](config)
    check_task_follows_config(task, config)
    return task, data


def check_task_follows_config(task: Task, config: RunConfig) -> None:
    """Refuse a task built without the run's settings that every task carries (a builder added outside the package
    that left ``max_length`` at its default trained at 256 tokens while config and card said otherwise)."""
    t = config.training
    expected = {"max_length": t.max_length, "trust_remote_code": config.trust_remote_code, "allow_pickle": config.allow_pickle}
    for key, value in expected.items():
        if getattr(task, key, value) != value:
            where = f"training.{key}" if key == "max_length" else key
            raise ConfigError(
                f"task={config.task}: its builder made the task with {key}={getattr(task, key)!r} while {where}="
                f"{value!r}; pass the config's value on to the task (docs/architecture.md, Add a task, step 2)."
            )
    if t.class_weights == "balanced" and getattr(task, "class_weights", None) is None:
        raise ConfigError(
            f"task={config.task}: training.class_weights=balanced, but its builder gave the task no class weights; "
            "remove the setting, or have the builder compute them (tasks/classification.py shows how)."
        )


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
