# SPDX-License-Identifier: MIT
"""The DINO world model: the frozen encoder, the embeddings of proprio and actions, the ViT
predictor and the decoder (world.py), built from a RunConfig (build.py), rolled out open loop
(rollouts.py). Imports torch."""
