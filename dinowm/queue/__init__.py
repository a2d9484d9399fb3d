# SPDX-License-Identifier: MIT
"""The queue: entries resolved and validated when added, started one after another by one
detached queue supervisor per project when the GPUs are free and cool; sweeps expand a grid or
random draws of overrides into entries.

entries.py (add, remove, move, pause: what the CLI and the TUI call), sweep.py (the grid and
the draws), gate.py (free and cool), runner.py (the queue supervisor), journal.py (the project
folder's queue.jsonl), hooks.py (on_empty, where alerts plug in).
"""
