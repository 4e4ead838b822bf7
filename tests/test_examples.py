"""The Examples sections of the public docstrings run and print what they show."""

import doctest

import pytest

import selfdistill.distill
import selfdistill.probe
import selfdistill.theory.block


@pytest.mark.parametrize("module", [selfdistill.probe, selfdistill.distill, selfdistill.theory.block], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
