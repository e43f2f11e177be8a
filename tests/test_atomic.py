"""Atomic writes: the target is either the old content or the new, never half, and no temp files stay."""

from __future__ import annotations

import pytest

from clone.atomic import atomic_path, write_text_atomic


def test_file_replaced_and_no_temporary_left(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    write_text_atomic(target, "hello")
    write_text_atomic(target, "again")
    assert target.read_text() == "again"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_failed_file_write_keeps_old_content(tmp_path):
    target = tmp_path / "file.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_directory_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "a.json").write_text("1")
    with pytest.raises(KeyboardInterrupt), atomic_path(target, directory=True) as tmp:
        (tmp / "b.json").write_text("2")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    with atomic_path(target, directory=True) as tmp:
        (tmp / "c.json").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
