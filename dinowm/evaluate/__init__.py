# SPDX-License-Identifier: MIT
"""`dinowm eval`: a run's checkpoints judged offline by rollouts and planning.

The torch-free side: request.py turns the command's options into the evaluation process's
request (which checkpoints, the planners' settings); watch.py runs that process under a lock,
with a heartbeat budget, and files its results into the run folder's evaluations.jsonl and
runs.db; plot.py draws the error against the horizon. The torch side, run in that process:
process.py (`python -m dinowm.evaluate.process`: rollouts, plans, pictures) and planning.py
(the objective, CEM and gradient descent).
"""
