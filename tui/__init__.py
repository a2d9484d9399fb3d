# SPDX-License-Identifier: MIT
"""dinowm-tui: the Textual app that operates runs (never imports torch)."""
