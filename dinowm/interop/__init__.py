# SPDX-License-Identifier: MIT
"""Crossings to code outside the trainer: a checkpoint as the public DINO-WM planner's model
folder (export.py, with its hydra.yaml from hydra.py), and the torch side's tools run in a
child process for the torch-free CLI and TUI (tools.py). Imports torch."""
