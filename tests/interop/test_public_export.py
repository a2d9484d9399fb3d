# SPDX-License-Identifier: MIT
"""dinowm export-checkpoint: a run's weights as module objects of a DINO-WM checkout's classes,
loadable by the public planner without dinowm, computing what dinowm computes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import torch

from dinowm.errors import ConfigError
from dinowm.train import checkpoint as ckpt
from dinowm.interop.hydra import to_yaml
from dinowm.interop.export import check_supported, copy_weights, import_checkout
from tests.support.public_checkout import VIT, write_checkout
from tests.support.supervised import Project
from tests.support.trainer import make_run_dir, run_trainer
from tests.support.yaml_subset import load, read_subset

NAME = "tiny-export"

# Runs with only the checkout importable: load what plan.py loads, predict, decode.
CHECK = r'''
import json, sys
checkout, model_file, inputs_file, out_file = sys.argv[1:]
sys.path.insert(0, checkout)
import torch
payload = torch.load(model_file, map_location="cpu", weights_only=False)
assert "dinowm" not in sys.modules, sorted(m for m in sys.modules if "dinowm" in m)
import models.vit
try:  # the public constructor moves the mask to 'cuda'; without CUDA that fails
    models.vit.Attention(8, heads=2, dim_head=4)
    cuda_move_failed = False
except (AssertionError, RuntimeError):
    cuda_move_failed = True
x = torch.load(inputs_file)
tokens, proprio, action = x["tokens"], x["proprio"], x["action"]  # (B, T, P, D_vis), (B, T, 3), (B, T, A)
b, t, p, _ = tokens.shape
with torch.no_grad():
    prop = payload["proprio_encoder"](proprio)[:, :, None].expand(-1, -1, p, -1)
    act = payload["action_encoder"](action)[:, :, None].expand(-1, -1, p, -1)
    z = torch.cat([tokens, prop, act], dim=-1)  # (B, T, P, D)
    pred = payload["predictor"](z.flatten(1, 2)).reshape(z.shape)
    images, _ = payload["decoder"](pred[..., : tokens.shape[-1]])  # (B*T, 3, H, W)
torch.save({"pred": pred, "images": images.reshape(b, t, *images.shape[1:])}, out_file)
attn = payload["predictor"].transformer.layers[0][0]
print(json.dumps({"epoch": payload["epoch"], "mask_device": str(attn.bias.device),
                  "training": payload["predictor"].training, "cuda_move_failed": cuda_move_failed,
                  "classes": {k: type(v).__module__ + "." + type(v).__name__
                              for k, v in payload.items() if k != "epoch"}}))
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2-epoch tiny run (the trainer alone, then `dinowm reindex` records it), exported
    (newest epoch) into a stand-in checkout."""
    root = tmp_path_factory.mktemp("export")
    (root / "project").mkdir()
    project = Project(root / "project")
    checkout = write_checkout(root / "dino_wm")
    run_dir = make_run_dir(project.root, "20260101-000000-e4e4", [
        "training.epochs=2", "training.max_steps_per_epoch=2",
        "training.num_reconstruct_samples=0", "training.rollout_horizon=0"])
    spec = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**spec, "name": NAME}))
    trained = run_trainer(run_dir)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert project.cli("reindex").returncode == 0
    result = project.cli("export-checkpoint", NAME, "--dino-wm", str(checkout))
    assert result.returncode == 0, result.stdout + result.stderr
    return {"root": root, "project": project, "checkout": checkout, "result": result,
            "run_dir": run_dir, "out": checkout / "outputs" / NAME}


def dinowm_reference(run_dir: Path, inputs: dict) -> dict:
    """dinowm's own prediction and decoded frames from the run's epoch-2 checkpoint."""
    from dinowm.config import from_dict
    from dinowm.model.build import build_model, load_model_state

    state, _ = ckpt.load(run_dir / "checkpoints" / "epoch_0002.pth")
    parts = state["model"]
    model = build_model(from_dict(state["config"]), parts["proprio_encoder"]["proj.weight"].shape[1],
                        parts["action_encoder"]["proj.weight"].shape[1], load_weights=False)
    load_model_state(model, parts)
    model.eval()
    with torch.no_grad():
        z = model.encode(inputs["tokens"], inputs["proprio"], inputs["action"],
                         tokens=inputs["tokens"])  # (B, T, P, D); frames unused with tokens
        pred = model.predict(z)
        return {"pred": pred, "images": model.decode(pred)}


def test_the_public_classes_alone_compute_dinowms_prediction(exported: dict) -> None:
    out, root = exported["out"], exported["root"]
    stdout = exported["result"].stdout
    for name in ("checkpoints/model_2.pth", "checkpoints/model_latest.pth", "hydra.yaml"):
        assert f"wrote {out / name}" in stdout
    assert (f"cd {exported['checkout']} && python plan.py ckpt_base_path={exported['checkout']} "
            f"model_name={NAME} model_epoch=2") in stdout
    assert "warning:" in stdout and "tiny test encoder" in stdout
    state, _ = ckpt.load(exported["run_dir"] / "checkpoints" / "epoch_0002.pth")
    g = torch.Generator().manual_seed(1)
    action_dim = state["model"]["action_encoder"]["proj.weight"].shape[1]
    inputs = {"tokens": torch.randn(2, 2, 4, 16, generator=g),  # num_hist 2, 2x2 patches, tiny_dim
              "proprio": torch.randn(2, 2, 3, generator=g),
              "action": torch.randn(2, 2, action_dim, generator=g)}
    torch.save(inputs, root / "inputs.pt")
    check = subprocess.run([sys.executable, "-I", "-c", CHECK, str(exported["checkout"]),
                            str(out / "checkpoints" / "model_latest.pth"), str(root / "inputs.pt"),
                            str(root / "public.pt")], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-3000:]
    info = json.loads(check.stdout.splitlines()[-1])
    assert info["epoch"] == 2 and info["mask_device"] == "cpu" and info["training"] is False
    assert info["classes"] == {"predictor": "models.vit.ViTPredictor",
                               "decoder": "models.vqvae.VQVAE",
                               "action_encoder": "models.proprio.ProprioceptiveEmbedding",
                               "proprio_encoder": "models.proprio.ProprioceptiveEmbedding"}
    if not torch.cuda.is_available():
        assert info["cuda_move_failed"], "the stand-in must exercise the public .to('cuda')"
    public = torch.load(root / "public.pt")
    ours = dinowm_reference(exported["run_dir"], inputs)
    assert public["images"].shape == (2, 2, 3, 32, 32)
    for key in ("pred", "images"):
        assert torch.allclose(public[key], ours[key], atol=1e-5, rtol=0), \
            (key, float((public[key] - ours[key]).abs().max()))


def test_hydra_yaml_has_the_runs_sizes_and_statistics(exported: dict) -> None:
    out = exported["out"]
    doc = load((out / "hydra.yaml").read_text())
    state, manifest = ckpt.load(exported["run_dir"] / "checkpoints" / "epoch_0002.pth")
    assert (doc["num_hist"], doc["num_pred"], doc["frameskip"], doc["img_size"]) == (2, 1, 2, 32)
    assert (doc["action_emb_dim"], doc["proprio_emb_dim"], doc["concat_dim"]) == (10, 10, 1)
    assert doc["has_predictor"] is True and doc["has_decoder"] is True
    assert doc["model"]["_target_"] == "models.visual_world_model.VWorldModel"
    assert doc["predictor"] == {"_target_": "models.vit.ViTPredictor", "depth": 1, "heads": 2,
                                "dim_head": 8, "mlp_dim": 32, "dropout": 0.1, "emb_dropout": 0,
                                "pool": "mean"}
    assert doc["decoder"]["channel"] == 16 and doc["decoder"]["quantize"] is False
    assert doc["encoder"]["name"] == "dinov2_vits14"
    assert doc["training"]["encoder_lr"] == 1e-6 and doc["training"]["epochs"] == 2
    dataset = doc["env"]["dataset"]
    assert dataset["_target_"] == \
        "datasets.synthetic_push_dset.load_synthetic_push_slice_train_val"
    assert Path(dataset["data_path"]).is_dir() and dataset["split_ratio"] == 0.9
    meta = doc["dinowm"]
    assert (meta["run_name"], meta["epoch"], meta["sha256"]) == (NAME, 2, manifest["sha256"])
    assert meta["run_id"] == exported["run_dir"].name
    assert meta["stats"] == state["stats"] and "training split" in meta["stats_source"]
    assert read_subset((out / "hydra.yaml").read_text()) == doc
    files = sorted(p.name for p in out.rglob("*"))
    assert files == ["checkpoints", "hydra.yaml", "model_2.pth", "model_latest.pth"]
    assert (out / "checkpoints/model_2.pth").read_bytes() == \
        (out / "checkpoints/model_latest.pth").read_bytes()


@pytest.mark.extended
def test_an_older_epoch_to_another_folder_and_a_failed_write_leaves_no_part(
        exported: dict) -> None:
    project, checkout = exported["project"], exported["checkout"]
    out = exported["root"] / "elsewhere" / "outputs" / "first"
    args = ("export-checkpoint", NAME, "--epoch", "1", "--dino-wm", str(checkout),
            "--out", str(out))
    failed = project.cli(*args, env={"DINOWM_FAULT": "ckpt_mid_write:2:raise"})
    assert failed.returncode != 0 and failed.stdout == ""
    assert sorted(p.name for p in out.rglob("*")) == ["checkpoints", "model_1.pth"]
    done = project.cli(*args, "--dataset-target", "datasets.franka_dset.load_franka")
    assert done.returncode == 0, done.stderr
    assert (f"ckpt_base_path={exported['root'] / 'elsewhere'} model_name=first model_epoch=1"
            in done.stdout)
    assert sorted(p.name for p in out.rglob("*")) == \
        ["checkpoints", "hydra.yaml", "model_1.pth", "model_latest.pth"]
    doc = load((out / "hydra.yaml").read_text())
    assert doc["dinowm"]["epoch"] == 1
    assert doc["env"]["dataset"]["_target_"] == "datasets.franka_dset.load_franka"


def test_without_dino_wm_it_says_why_and_writes_nothing(exported: dict) -> None:
    watched = (exported["checkout"], exported["run_dir"])
    before = [sorted(folder.rglob("*")) for folder in watched]
    done = exported["project"].cli("export-checkpoint", NAME)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "--dino-wm PATH" in line and "unpickle" in line
    assert [sorted(folder.rglob("*")) for folder in watched] == before


def test_a_checkout_without_models_vit_is_named(exported: dict) -> None:
    partial = write_checkout(exported["root"] / "partial", skip=("models/vit.py",))
    done = exported["project"].cli("export-checkpoint", NAME, "--dino-wm", str(partial))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert f"{partial} has no models/vit.py" in line
    assert not (partial / "outputs").exists()


def test_an_absent_epoch_lists_the_available_ones(exported: dict) -> None:
    done = exported["project"].cli("export-checkpoint", NAME, "--epoch", "7", "--dino-wm",
                                   str(exported["checkout"]))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "no committed checkpoint of epoch 7" in line and "available epochs: 1, 2" in line


def test_a_folder_of_another_model_is_not_overwritten(exported: dict) -> None:
    other = exported["checkout"] / "outputs" / "theirs"
    other.mkdir(parents=True)
    (other / "hydra.yaml").write_text("num_hist: 3\n")
    done = exported["project"].cli("export-checkpoint", NAME, "--dino-wm",
                                   str(exported["checkout"]), "--out", str(other))
    assert done.returncode == 2 and "holds another model" in done.stderr
    assert (other / "hydra.yaml").read_text() == "num_hist: 3\n"


@pytest.fixture
def fresh_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A checkout imported in this process is forgotten after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    with mock.patch.dict(sys.modules):
        yield


def test_a_missing_dependency_of_the_checkout_is_named_with_its_fix(
        tmp_path: Path, fresh_imports: None) -> None:
    checkout = write_checkout(tmp_path / "dino_wm",
                              replace={"models/vit.py": "import einops\n" + VIT})
    sys.modules["einops"] = None  # type: ignore[assignment]  # not installed, whatever is
    with pytest.raises(ConfigError) as err:
        import_checkout(checkout)
    assert "imports 'einops'" in str(err.value) and "pip install einops" in str(err.value)


def test_a_checkout_module_with_a_parameter_we_lack_is_refused(
        tmp_path: Path, fresh_imports: None) -> None:
    pub = import_checkout(write_checkout(tmp_path / "dino_wm"))
    module = pub.proprio.ProprioceptiveEmbedding(num_frames=1, in_chans=3, emb_dim=10)
    ours = {"proj.weight": torch.zeros(10, 3, 1), "proj.bias": torch.zeros(10)}
    assert copy_weights("proprio_encoder", module, ours) == []
    module.scale = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(ConfigError, match="parameters dinowm does not train"):
        copy_weights("proprio_encoder", module, ours)
    with pytest.raises(ConfigError, match=r"is \(10, 4, 1\)"):
        copy_weights("proprio_encoder", module, {**ours, "proj.weight": torch.zeros(10, 4, 1)})


def test_unsupported_layouts_are_refused() -> None:
    with pytest.raises(ConfigError, match="concat_dim=1 and num_pred=1"):
        check_supported({"model": {"concat_dim": 0}, "num_pred": 1})
    with pytest.raises(ConfigError, match="num_pred=2"):
        check_supported({"model": {"concat_dim": 1}, "num_pred": 2})
    with pytest.raises(ConfigError, match=r"no decoder \(model.decoder=off\)"):
        check_supported({"model": {"concat_dim": 1, "decoder": "off"}, "num_pred": 1})
    check_supported({"model": {"concat_dim": 1, "decoder": "on"}, "num_pred": 1})


def test_the_yaml_emitter_writes_what_yaml_reads() -> None:
    doc = {"lr": 1e-6, "big": 1e20, "x": 0.5, "n": 3, "yes": True, "none": None,
           "text": 'say "hi": #1', "empty": {}, "args": [], "stats": [1.5, -2.0],
           "nested": {"_target_": "a.b", "inner": {"k": "v"}}}
    text = to_yaml(doc)
    assert "lr: 1.0e-06\n" in text and "big: 1.0e+20\n" in text and '"yes": true' in text
    assert read_subset(text) == doc and load(text) == doc
    with pytest.raises(ValueError):
        to_yaml({"bad": float("nan")})


def test_the_export_says_when_the_planner_normalises_with_other_statistics(
    exported: dict,
) -> None:
    """The run trained with the train split's statistics (data.stats_from's default); the
    public loaders recompute them over every episode: the export says by how much, the fix."""
    from dinowm.config import from_dict
    from dinowm.interop.statistics import largest_difference, planner_warning, public_statistics

    stdout = " ".join(exported["result"].stdout.split())  # the console wraps long lines
    assert "recomputes the statistics over every episode" in stdout
    assert "data.stats_from=train" in stdout and "Fix: train with data.stats_from=all" in stdout
    state, _ = ckpt.load(exported["run_dir"] / "checkpoints" / "epoch_0002.pth")
    cfg = from_dict(state["config"])
    public = public_statistics(cfg)
    diff = largest_difference(state["stats"], public)
    assert diff.relative > 0.001 and f"{diff.relative:.1%}" in stdout and diff.what in stdout
    # the same statistics as the public loaders' (a run with data.stats_from=all): no warning
    assert planner_warning(cfg, public) is None
    assert largest_difference(public, public).relative == 0.0
    # a dataset moved away since: the export says it could not compare, and why
    moved = from_dict({**state["config"], "data": {**state["config"]["data"],
                                                   "path": str(exported["root"] / "gone")}})
    warning = planner_warning(moved, state["stats"])
    assert warning is not None and "could not be read to compare" in warning


def test_the_largest_difference_is_in_units_of_the_public_std() -> None:
    from dinowm.interop.statistics import largest_difference

    ours = {"action_mean": [0.0, 1.0], "action_std": [1.0, 2.0], "proprio_mean": [0.5],
            "proprio_std": [1.0]}
    public = {"action_mean": [0.1, 1.0], "action_std": [1.0, 2.5], "proprio_mean": [0.5],
              "proprio_std": [1.0]}
    diff = largest_difference(ours, public)  # std: 0.5 / 2.5 = 0.2 beats mean: 0.1 / 1.0
    assert diff.relative == pytest.approx(0.2) and diff.what == "action std, column 1"
