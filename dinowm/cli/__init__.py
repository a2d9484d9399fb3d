"""The `dinowm` command: thin click commands that call one function each."""

from dinowm.cli import (data, doctor, evals, models, perf, project, runs,  # noqa: F401
                        serve)  # (they register commands)
from dinowm.cli.base import main

__all__ = ["entry", "main"]


def entry() -> None:
    """Console-script entry point."""
    main(prog_name="dinowm")
