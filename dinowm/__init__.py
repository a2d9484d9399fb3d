# SPDX-License-Identifier: MIT
"""dinowm: train, supervise and record DINO world-model runs on one workstation GPU."""

__version__ = "0.1.0"
