"""`dinowm eval`: a run's checkpoints judged offline by rollouts and planning.

request.py turns the command's options into the evaluation process's request (which
checkpoints, the planners' settings); watch.py runs that process (python -m
dinowm.train.evaluate) under a lock, with a heartbeat budget, and files its results into the
run folder's evaluations.jsonl and runs.db; control.py starts it detached and stops it (the TUI).
"""
