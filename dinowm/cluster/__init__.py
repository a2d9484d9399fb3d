# SPDX-License-Identifier: MIT
"""Runs on a Slurm cluster, watched from the login node.

The shared run folder is the contract: the job's supervisor writes events, checkpoints, logs and
its record there; the login node's CLI and TUI read them into the local runs.db (`follow`) and
ask Slurm (`slurm`) for the job's state. `submit` and `control` act; `job` runs in the
allocation.
"""
