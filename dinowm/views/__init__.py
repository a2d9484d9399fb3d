# SPDX-License-Identifier: MIT
"""What the faces show of the record, shaped once: the CLI and the TUI render these views."""
