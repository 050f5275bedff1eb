"""Plots saved next to the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlp_transfer.files import write_atomic


def new_figure(**subplots: Any) -> tuple[Any, Any]:
    """``plt.subplots(**subplots)`` on the file-only Agg backend (no display is needed or used)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(**subplots)


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it at ``path`` (creating its folder; PNG unless the suffix names another format) and free it.

    The image is written beside ``path`` and moved into place when whole: a failed write (a full disk, a file-size
    limit) keeps the earlier image, never a cut one.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        # a partial file written for files.write_together (report.png.partial) is still a PNG
        image_format = Path(path.name.removesuffix(".partial")).suffix.lstrip(".").lower() or "png"
        write_atomic(path, lambda partial: fig.savefig(partial, dpi=dpi, format=image_format))
    finally:
        plt.close(fig)
    return path


def save_confusion_matrix(confusion: dict[str, Any], path: str | Path, title: str = "Confusion matrix") -> Path:
    """Draw ``{"labels": [...], "matrix": [[...]]}`` (rows: gold, columns: predicted) as a PNG."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = new_figure(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_figure(fig, path)
