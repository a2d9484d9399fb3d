# SPDX-License-Identifier: MIT
"""The `dinowm` command: thin click commands that call one function each."""

# Each of these modules registers its commands on `main` when imported.
from dinowm.cli import (  # noqa: F401
    alerts,
    data,
    doctor,
    evals,
    models,
    perf,
    project,
    queue,
    runs,
    serve,
)
from dinowm.cli.base import main

__all__ = ["entry", "main"]


def entry() -> None:
    """Console-script entry point."""
    main(prog_name="dinowm")
