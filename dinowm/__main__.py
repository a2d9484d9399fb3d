# SPDX-License-Identifier: MIT
"""`python -m dinowm` is the `dinowm` command."""

from dinowm.cli import entry

entry()
