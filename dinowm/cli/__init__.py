"""The `dinowm` command: thin click commands that call one function each."""

# noqa: F401 below: importing the modules registers their commands
from dinowm.cli import data, evals, models, perf, project, queue, runs  # noqa: F401
from dinowm.cli.base import main

__all__ = ["entry", "main"]


def entry() -> None:
    """Console-script entry point."""
    main(prog_name="dinowm")
