# SPDX-License-Identifier: MIT
"""Helpers shared by the tests: the only part of tests/ that a test module may import.

process      real children in their own sessions (spawn_process), wait_until for plain code
trainer      the tiny model (TINY), run folders for the trainer, the trainer process, events
supervised   Project: a project folder for supervised runs; tiny(), FAST_WATCHDOG
run_checks   what a supervised run left behind: epochs, checkpoints, final weights (torch)
nvml_fake    a fake pynvml module (in this process or written for a supervisor)
store_load   a runs.db load generator, run as a separate process
export_fixture  a fixed record (two runs, every kind of incident) for the export tests
tui, tui_seed   the TUI tests: a seeded project, plain-text screens, pilot_wait_for, the app

Fixtures are registered once, in tests/conftest.py.
"""
