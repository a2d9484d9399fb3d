"""Screens of dinowm-tui."""
