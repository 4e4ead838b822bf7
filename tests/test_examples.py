"""The Examples sections of the public docstrings run and print what they show."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["selfdistill.probe", "selfdistill.distill", "selfdistill.theory.block"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
