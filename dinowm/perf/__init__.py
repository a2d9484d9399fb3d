# SPDX-License-Identifier: MIT
"""Performance tools: a benchmark trial (bench.py), where one training step's time goes
(profile.py), each card's dense BF16 peak (gpus.py). Each runs in its own process, started by
dinowm.trials. Imports torch."""
