# SPDX-License-Identifier: MIT
"""Widgets of dinowm-tui."""
