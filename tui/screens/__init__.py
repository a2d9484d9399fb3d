# SPDX-License-Identifier: MIT
"""Screens of dinowm-tui."""
