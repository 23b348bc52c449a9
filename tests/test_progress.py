"""nblib.progress: the one progress bar, and the NBLIB_PROGRESS switch the build uses."""

import pytest

from nblib import progress


def test_enabled_follows_the_environment_unless_told(monkeypatch):
    monkeypatch.setenv("NBLIB_PROGRESS", "0")
    assert progress.enabled(None) is False and progress.enabled(True) is True
    monkeypatch.setenv("NBLIB_PROGRESS", "1")
    assert progress.enabled(None) is True and progress.enabled(False) is False
    monkeypatch.delenv("NBLIB_PROGRESS")
    assert progress.enabled(None) is True


def test_bar_iterates_and_is_off_when_told(monkeypatch):
    monkeypatch.setenv("NBLIB_PROGRESS", "0")
    assert list(progress.bar(range(3), desc="steps")) == [0, 1, 2]
    with progress.bar(total=4, desc="jobs", progress=False) as b:
        b.update(4)
        assert b.disable


@pytest.mark.parametrize("kwargs, words", [
    (dict(desc=3), "desc must be"), (dict(desc="x", progress="yes"), "progress must be"),
    (dict(desc="x", leave=None), "leave must be")])
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(TypeError, match=words):
        progress.bar(range(2), **kwargs)
