"""Where the two text sets of ``nlp-transfer shift`` come from: text files, or a run directory's training data."""

from __future__ import annotations

from pathlib import Path

from nlp_transfer.data.texts import check_not_binary
from nlp_transfer.errors import DataError, UserError

#: suffixes read as tables (a text column); any other file is read as one text a line
TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson")


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a saved run (a folder with the model's config.json)."""
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def is_adapt_run(path: str | Path) -> bool:
    """Whether ``path`` is the output of ``nlp-transfer adapt`` (an encoder without a task head)."""
    from nlp_transfer.adapt.run import MARKER_FILE

    return is_run_dir(path) and (Path(path) / MARKER_FILE).is_file()


def check_text_file(path: str | Path, encoding: str = "utf-8") -> None:
    """Refuse a missing path, a folder that is not a run, or a binary file, each with a one-line fix.

    A file with NUL bytes counts as binary, unless ``encoding`` is a UTF-16 or UTF-32 one (where they are normal).
    """
    file = Path(path)
    if not file.exists():
        raise DataError(f"{path}: no such file. Check the path (relative paths start from the current directory).")
    if is_run_dir(file):
        raise DataError(f"{path}: a saved run, where a text file is needed. A run can only be the SOURCE; give TARGET as texts.")
    if file.is_dir():
        raise DataError(f"{path}: a folder but not a saved run (no config.json). Give a text file, or a run's output_dir.")
    check_not_binary(file, encoding)


def read_text_file(path: str | Path, *, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """The non-empty texts of ``path``: one a line (.txt and other suffixes) or the ``text_column`` of a table."""
    from nlp_transfer.data.readers import read_text, text_lines
    from nlp_transfer.data.texts import read_texts

    check_text_file(path, encoding)
    if Path(path).suffix.lower() in TABLE_SUFFIXES:
        texts = read_texts(str(path), text_column=text_column, encoding=encoding)
    else:
        texts = text_lines(read_text(str(path), encoding))
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise DataError(f"{path}: no texts (every row is blank). Give a file with one text a line, or a filled text column.")
    return texts


def run_training_texts(run_dir: str | Path) -> list[str]:
    """The texts a saved run trained on, read as its config.yaml reads them (augmented copies and label-name rows left out)."""
    from nlp_transfer.config import load_saved_config

    config_path = Path(run_dir) / "config.yaml"
    if not config_path.is_file():
        raise UserError(
            f"{run_dir}: the run has no config.yaml, so its training texts are unknown. Give its training file as SOURCE."
        )
    config = load_saved_config(config_path)  # a run saved before an option was refused is still read
    data = config.data.human_labelled_only()
    try:
        if is_adapt_run(run_dir):  # the unlabelled texts it trained on
            from nlp_transfer.adapt.texts import read_texts as read_adapt_texts

            return read_adapt_texts(data, config.seed).train
        if config.task == "ner":  # the training split: without the sentences a held-out validation took
            from nlp_transfer.data.tagged_rows import load_token_classification_data

            tagged = load_token_classification_data(data, seed=config.seed)
            return [" ".join(tokens) for tokens in tagged.splits["train"]["tokens"][:]]
        from nlp_transfer.data.text_rows import load_text_classification_data

        loaded = load_text_classification_data(data, multi_label=config.task == "multilabel", seed=config.seed)
        return [str(t) for t in loaded.splits["train"]["text"][:]]
    except UserError as err:
        raise UserError(f"{run_dir}: cannot read the run's training data ({err}) Give its training file as SOURCE.") from None
