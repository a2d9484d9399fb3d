# SPDX-License-Identifier: MIT
"""The `[slurm]` table of dinowm.toml and the `--slurm` flags: how a run asks for its job."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from dinowm.errors import ConfigError

# Slurm's own time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


@dataclass(frozen=True)
class SlurmOptions:
    """What one run's batch job asks Slurm for; each field is a key of `[slurm]`."""

    nodes: int = 1  # nodes of the allocation, one torchrun on each
    gpus_per_node: int = 0  # GPUs per node (one rank each); 0 = no GPU (CPU ranks)
    cpus_per_task: int = 0  # CPUs for each node's torchrun; 0 = Slurm's default
    partition: str = ""  # empty = the cluster's default partition
    time: str = ""  # the job's time limit (HH:MM:SS, D-HH:MM:SS); empty = the partition's
    account: str = ""  # empty = the user's default account
    signal_s: int = 120  # seconds before the time limit when the job checkpoints and requeues
    requeue: bool = True  # requeue at the time limit, on preemption and on node failure
    rdzv_port: int = 29500  # multi-node: rendezvous on port + (job id + attempt) % 1000
    extra: tuple[str, ...] = ()  # further sbatch options, e.g. ["--qos=long", "--mem=64G"]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "extra": list(self.extra)}


KEYS = {f.name: f for f in dataclasses.fields(SlurmOptions)}


def _check(name: str, value: Any, where: str) -> Any:
    field = KEYS.get(name)
    if field is None:
        known = ", ".join(KEYS)
        raise ConfigError(f"Unknown key '{name}' in [slurm] of {where}; the keys are {known}.")
    kind = {"int": int, "str": str, "bool": bool}.get(str(field.type))
    if name == "extra":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"slurm.extra in {where} must be a list of sbatch options such "
                f'as ["--qos=long"], got {value!r}.'
            )
        bad = [v for v in value if not v.startswith("-")]
        if bad:
            raise ConfigError(
                f"slurm.extra option {bad[0]!r} in {where} is not an sbatch "
                f'option; write it as on sbatch\'s command line, e.g. "--qos=long".'
            )
        return tuple(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"slurm.{name} in {where} must be a whole number, got {value!r}.")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"slurm.{name} in {where} must be true or false, got {value!r}.")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"slurm.{name} in {where} must be a string, got {value!r}.")
    minimum = {
        "nodes": 1,
        "gpus_per_node": 0,
        "cpus_per_task": 0,
        "signal_s": 10,
        "rdzv_port": 1,
    }.get(name)
    if minimum is not None and value < minimum:
        raise ConfigError(f"slurm.{name}={value} in {where} is below {minimum}.")
    if name == "time" and value and not _TIME.match(value):
        raise ConfigError(
            f"slurm.time={value!r} in {where} is not a Slurm time limit; write "
            f'HH:MM:SS, D-HH:MM:SS or minutes, e.g. "12:00:00".'
        )
    return value


def options(table: dict[str, Any], where: str, **flags: Any) -> SlurmOptions:
    """[slurm] of dinowm.toml, then the command line's flags (None = not given), checked."""
    values: dict[str, Any] = {}
    for name, value in table.items():
        values[name] = _check(name, value, where)
    for name, value in flags.items():
        if value is not None:
            values[name] = _check(name, value, f"--{name.replace('_', '-')}")
    return SlurmOptions(**values)


def from_dict(data: dict[str, Any]) -> SlurmOptions:
    """The options a run folder recorded (its config.json's "slurm")."""
    return options({k: v for k, v in data.items() if k in KEYS}, "the run's recorded options")
