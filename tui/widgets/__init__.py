"""Widgets of dinowm-tui."""
