"""Reading, checking and splitting data."""

from nlp_transfer.data.loading import load_splits
from nlp_transfer.data.readers import infer_format, read_records
from nlp_transfer.data.tagged_rows import TokenClassificationData, load_token_classification_data, read_tagged_file
from nlp_transfer.data.text_rows import (
    TextClassificationData,
    load_text_classification_data,
    read_text_classification_file,
)

__all__ = [
    "TextClassificationData",
    "TokenClassificationData",
    "infer_format",
    "load_splits",
    "load_text_classification_data",
    "load_token_classification_data",
    "read_records",
    "read_tagged_file",
    "read_text_classification_file",
]
