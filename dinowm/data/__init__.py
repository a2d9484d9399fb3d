# SPDX-License-Identifier: MIT
"""The data: episodes as they lie on disk (episodes.py), checked before training (check.py),
normalised (normalize.py), cut into training windows (datasets.py) and ordered into each
rank's batches (sampling.py); the built-in synthetic dataset (synth.py) and the frozen
encoder's feature cache (features.py). Imports torch."""
