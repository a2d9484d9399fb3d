# SPDX-License-Identifier: MIT
"""Domain errors: each one names the thing, the value and the fix in one line."""

from __future__ import annotations


class DinowmError(Exception):
    """An error a user can act on; the CLI prints it as one line and exits with `exit_code`.

    The message is kept to one line even when it quotes another library's multi-line error
    (a pickle or TOML parser, an OS error).
    """

    exit_code = 1

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(" ".join(str(message).split()), *args)


class ConfigError(DinowmError):
    """Bad configuration: dinowm.toml, a preset or a key=value override."""

    exit_code = 2


class DataError(DinowmError):
    """A dataset that cannot be trained on as it is (missing files, wrong shapes, NaN)."""

    exit_code = 2


class NotFoundError(DinowmError):
    """A run, preset or file that does not exist."""

    exit_code = 2
