"""The ``selfdistill`` command (the CLI layer: parse, check, call the library, print).

* :mod:`.main` -- the parser and every subcommand but one: run, sweep, report, extract, correlation;
* :mod:`.theory` -- ``selfdistill theory``;
* :mod:`.argtypes` -- the argument converters and output-path checks they share.
"""

from .main import SUBCOMMANDS, build_parser, main

__all__ = ["main", "build_parser", "SUBCOMMANDS"]
