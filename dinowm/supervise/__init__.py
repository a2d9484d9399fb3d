# SPDX-License-Identifier: MIT
"""Supervision: the supervisor process and what it watches with (progress, processes, GPU)."""
