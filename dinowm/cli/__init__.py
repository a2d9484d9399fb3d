"""The `dinowm` command: thin click commands that call one function each."""

from dinowm.cli import (alerts, data, doctor, evals, models, perf, project,  # noqa: F401
                        queue, runs, serve)  # (they register commands)
from dinowm.cli.base import main

__all__ = ["entry", "main"]


def entry() -> None:
    """Console-script entry point."""
    main(prog_name="dinowm")
