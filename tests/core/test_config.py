# SPDX-License-Identifier: MIT
"""Config resolution, validation messages, presets, hash, dinowm.toml discovery."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dinowm.config import (TEMPLATE, config_hash, find_config, from_dict, load_project,
                           resolve, to_dict)
from dinowm.errors import ConfigError
from dinowm.schema import all_keys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def test_franka_preset_matches_the_users_log(project_dir: Path) -> None:
    cfg = resolve(load_project(), "franka_f5_h3").config
    assert (cfg.frameskip, cfg.num_hist, cfg.num_pred, cfg.seed) == (5, 3, 1, 0)
    t = cfg.training
    assert (t.batch_size, t.epochs, t.save_every_x_epoch) == (32, 100, 1)
    assert (t.encoder_lr, t.predictor_lr, t.decoder_lr, t.action_encoder_lr) == (
        1e-6, 5e-4, 3e-4, 5e-4)
    m = cfg.model
    assert (m.action_emb_dim, m.proprio_emb_dim, m.num_action_repeat, m.num_proprio_repeat) == (
        10, 10, 1, 1)
    assert cfg.emb_dim == 404 and cfg.encoder_dim == 384 and cfg.num_patches == 196
    assert (cfg.data.split_ratio, cfg.data.split_seed, cfg.data.normalize_action) == (0.9, 42, True)
    assert cfg.slice_span == 20


def test_emb_dim_is_derived_from_repeats(project_dir: Path) -> None:
    cfg = resolve(load_project(), "franka_f5_h3",
                  ["model.num_action_repeat=2", "model.proprio_emb_dim=5"]).config
    assert cfg.emb_dim == 384 + 5 + 2 * 10


def test_cli_config_shows_values_and_marks_overrides(project_dir: Path, cli) -> None:
    out = cli("config", "--preset", "franka_f5_h3")
    assert out.returncode == 0, out.stderr
    lines = {line.split("│")[1].strip(): line for line in out.stdout.splitlines()
             if line.count("│") >= 3}
    for key, value in [("frameskip", "5"), ("num_hist", "3"), ("num_pred", "1"),
                       ("training.batch_size", "32"), ("emb_dim", "404"),
                       ("training.encoder_lr", "1e-06"), ("training.predictor_lr", "0.0005"),
                       ("training.decoder_lr", "0.0003"),
                       ("training.action_encoder_lr", "0.0005")]:
        assert key in lines and f"│ {value} " in lines[key], key
    out = cli("config", "--preset", "franka_f5_h3", "training.batch_size=16")
    line = next(x for x in out.stdout.splitlines() if "training.batch_size" in x)
    assert "16" in line and "changed" in line
    assert "changed" not in next(x for x in out.stdout.splitlines() if "│ frameskip" in x)


@pytest.mark.parametrize("override, needle", [
    ("trainig.batch_size=16", "Did you mean 'training.batch_size'"),
    ("training.batch_size=abc", "training.batch_size"),
    ("training.batch_size=0", "training.batch_size"),
    ("data.split_ratio=1.0", "data.split_ratio"),
    ("frameskip=0", "frameskip"),
    ("num_pred=2", "num_pred"),
    ("batch_size=8", "Did you mean 'training.batch_size'"),
])
def test_bad_override_exits_2_with_one_line(project_dir: Path, cli, override: str,
                                            needle: str) -> None:
    out = cli("config", "--preset", "franka_f5_h3", override)
    assert out.returncode == 2
    assert needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert not (project_dir / "runs.db").exists()


def test_wrong_types_name_key_value_and_type(project_dir: Path) -> None:
    project = load_project()
    with pytest.raises(ConfigError, match=r"training\.batch_size='abc' is not an integer"):
        resolve(project, "franka_f5_h3", ["training.batch_size=abc"])
    with pytest.raises(ConfigError, match=r"must be >= 1"):
        resolve(project, "franka_f5_h3", ["training.batch_size=0"])
    with pytest.raises(ConfigError, match=r"choose one of fp32, bf16"):
        resolve(project, "franka_f5_h3", ["training.precision=fp16"])
    with pytest.raises(ConfigError, match=r"key=value"):
        resolve(project, "franka_f5_h3", ["training.batch_size"])


def test_toml_type_errors_name_the_table(project_dir: Path) -> None:
    text = (project_dir / "dinowm.toml").read_text()
    (project_dir / "dinowm.toml").write_text(
        text.replace("[presets.demo.training]\n", "[presets.demo.training]\ngrad_accum = \"8\"\n"))
    with pytest.raises(ConfigError) as err:
        resolve(load_project(), "demo")
    assert "[presets.demo]" in str(err.value) and "training.grad_accum" in str(err.value)


def test_malformed_toml_names_file_and_line(project_dir: Path, cli) -> None:
    path = project_dir / "dinowm.toml"
    lines = path.read_text().splitlines()
    lines.insert(11, "broken = = 3")
    path.write_text("\n".join(lines))
    out = cli("config")
    assert out.returncode == 2
    assert str(path) in out.stderr and "line 12" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_preset_and_cycles(project_dir: Path) -> None:
    project = load_project()
    with pytest.raises(ConfigError, match="Did you mean 'franka_f5_h3'"):
        resolve(project, "franka_f5h3")
    path = project_dir / "dinowm.toml"
    path.write_text(path.read_text() + '\n[presets.a]\nextends = "b"\n[presets.b]\nextends = "a"\n')
    with pytest.raises(ConfigError, match="cycle"):
        resolve(load_project(), "a")


def test_preset_extends_inherits(project_dir: Path) -> None:
    cfg = resolve(load_project(), "franka_f5_h3_b8").config
    assert cfg.frameskip == 5 and cfg.training.batch_size == 32 and cfg.micro_batch == 8


def test_cross_key_rules(project_dir: Path) -> None:
    project = load_project()
    with pytest.raises(ConfigError, match="multiple of 14"):
        resolve(project, "franka_f5_h3", ["model.encoder_img_size=200"])
    with pytest.raises(ConfigError, match="model.img_size=224"):
        resolve(project, "franka_f5_h3", ["model.img_size=256"])
    with pytest.raises(ConfigError, match="thermal.resume_temp_c"):
        resolve(project, "franka_f5_h3", ["thermal.resume_temp_c=90"])


def test_hash_is_stable_and_sensitive(project_dir: Path) -> None:
    project = load_project()
    a = resolve(project, "franka_f5_h3", ["training.batch_size=16", "frameskip=5"]).config
    b = resolve(project, "franka_f5_h3", ["frameskip=5", "training.batch_size=16"]).config
    c = resolve(project, "franka_f5_h3", ["training.batch_size=8"]).config
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 12
    # The JSON round trip (config.json of a run) keeps identity.
    assert config_hash(from_dict(json.loads(json.dumps(to_dict(a))))) == config_hash(a)


def test_discovery_parent_env_and_flag(project_dir: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    deep = project_dir / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(cwd=deep) == project_dir / "dinowm.toml"
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "dinowm.toml").write_text((project_dir / "dinowm.toml").read_text())
    monkeypatch.setenv("DINOWM_CONFIG", str(other))
    assert find_config(cwd=deep) == (other / "dinowm.toml").resolve()
    assert find_config(str(project_dir / "dinowm.toml")) == project_dir / "dinowm.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        find_config(str(tmp_path / "nope.toml"))


def test_missing_project_says_how_to_fix(cli, tmp_path: Path) -> None:
    out = cli("config", cwd=tmp_path)
    assert out.returncode == 2 and "dinowm init" in out.stderr


def test_project_paths_default_next_to_the_toml(project_dir: Path) -> None:
    project = load_project()
    assert project.runs_db == project_dir / "runs.db"
    assert project.outputs == project_dir / "outputs"
    cfg = resolve(project, "demo").config
    assert cfg.data.path == str(project_dir / "data" / "synthetic_push")


def test_init_writes_template_and_refuses_overwrite(cli, tmp_path: Path) -> None:
    out = cli("init", "proj", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = tmp_path / "proj" / "dinowm.toml"
    assert written.read_text() == TEMPLATE.read_text()
    out = cli("init", "proj", cwd=tmp_path)
    assert out.returncode == 2 and "--force" in out.stderr
    assert cli("init", "proj", "--force", cwd=tmp_path).returncode == 0


def test_shipped_toml_is_the_template_and_lists_every_default() -> None:
    assert (REPO / "dinowm.toml").read_text() == TEMPLATE.read_text()
    doc = tomllib.loads(TEMPLATE.read_text())
    flat: dict[str, object] = {}
    for key, value in doc["defaults"].items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    keys = all_keys()
    assert set(flat) == set(keys)
    for name, key in keys.items():
        assert flat[name] == key.default, name
