"""write_text_atomic: the new text whole, or the old file untouched."""

from __future__ import annotations

import pytest

import nlp_transfer.files as files
from nlp_transfer.files import write_text_atomic


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old", encoding="utf-8")
    write_text_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_interrupted_write_leaves_the_old_file_as_it_was(tmp_path, monkeypatch):
    """Planted fault: the process stops after writing the new text but before moving it into place."""
    target = tmp_path / "calibration.json"
    target.write_text('{"temperature": 1.5}', encoding="utf-8")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, '{"temperature": 2.0, "half": ')
    assert target.read_text(encoding="utf-8") == '{"temperature": 1.5}'
