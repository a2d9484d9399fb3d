# SPDX-License-Identifier: MIT
"""World-model modules: sizes, official weight layout, frame-causal attention, losses, rollout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dinowm.errors import ConfigError
from dinowm.model.encoder import Encoder, build_encoder, load_dinov2_weights
from dinowm.model.world import WorldModel, image_metrics
from dinowm.model.predictor import Predictor

# The official dinov2_vits14_pretrain.pth layout, written out independently of our modules.
TOP_KEYS = {
    "cls_token": (1, 1, 384),
    "pos_embed": (1, 1 + 37 * 37, 384),
    "mask_token": (1, 384),
    "patch_embed.proj.weight": (384, 3, 14, 14),
    "patch_embed.proj.bias": (384,),
    "norm.weight": (384,),
    "norm.bias": (384,),
}
BLOCK_KEYS = {
    "norm1.weight": (384,),
    "norm1.bias": (384,),
    "attn.qkv.weight": (1152, 384),
    "attn.qkv.bias": (1152,),
    "attn.proj.weight": (384, 384),
    "attn.proj.bias": (384,),
    "ls1.gamma": (384,),
    "norm2.weight": (384,),
    "norm2.bias": (384,),
    "mlp.fc1.weight": (1536, 384),
    "mlp.fc1.bias": (1536,),
    "mlp.fc2.weight": (384, 1536),
    "mlp.fc2.bias": (384,),
    "ls2.gamma": (384,),
}
TINY = {"num_hist": 3, "num_pred": 1, "img_size": 64, "encoder_img_size": 56}  # 4x4 patches


def official_state_dict() -> dict[str, torch.Tensor]:
    """Random tensors under the official key names and shapes."""
    shapes = dict(TOP_KEYS)
    for i in range(12):
        shapes.update({f"blocks.{i}.{k}": s for k, s in BLOCK_KEYS.items()})
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def full_encoder() -> Encoder:
    return build_encoder("dinov2_vits14", 196, 32, 2, 4)


def tiny_model(**overrides: object) -> WorldModel:
    torch.manual_seed(0)
    kwargs = dict(
        encoder=build_encoder("tiny", 56, tiny_dim=32, tiny_depth=2, tiny_heads=4),
        proprio_dim=3,
        action_dim=45,
        predictor_kwargs={"depth": 2, "heads": 2, "dim_head": 8, "mlp_dim": 32},
        decoder_kwargs={"channels": 16, "res_blocks": 1, "res_channels": 8},
        **TINY,
    )
    kwargs.update(overrides)
    return WorldModel(**kwargs)


def tiny_batch(frames: int = 4, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    visual = torch.rand(batch, frames, 3, 64, 64, generator=gen) * 2 - 1
    return visual, torch.randn(batch, frames, 3, generator=gen), torch.randn(batch, frames, 45, generator=gen)


def test_full_size_parameter_counts(full_encoder: Encoder) -> None:
    model = WorldModel(full_encoder, proprio_dim=3, action_dim=45, num_hist=3)
    assert model.parameter_counts() == {
        "encoder": 22_056_576,
        "predictor": 20_122_600,
        "decoder": 10_140_163,
        "action_encoder": 45 * 10 + 10,
        "proprio_encoder": 3 * 10 + 10,
        "trainable_total": 30_263_263,
    }
    assert model.emb_dim == 404 and model.num_patches == 196


def test_official_checkpoint_loads_strictly(full_encoder: Encoder, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / "dinov2_vits14_pretrain.pth"
    path.parent.mkdir(parents=True)
    state = official_state_dict()
    torch.save(state, path)
    assert load_dinov2_weights(full_encoder, None) == str(path)
    assert full_encoder.is_pretrained and full_encoder.label == "DINOv2 ViT-S/14 (pretrained)"
    assert torch.equal(full_encoder.blocks[11].ls2.gamma, state["blocks.11.ls2.gamma"])
    out = full_encoder(torch.zeros(1, 3, 196, 196))
    assert out.shape == (1, 196, 384) and torch.isfinite(out).all()


def test_missing_weights_name_the_path_and_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    encoder = build_encoder("tiny", 56, 32, 1, 4)
    with pytest.raises(ConfigError) as err:
        load_dinov2_weights(encoder, "")
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "dinov2_vits14_pretrain.pth") in message
    assert "model.encoder_weights" in message and "model.encoder=tiny" in message
    assert "\n" not in message


def test_mismatched_weights_name_the_file_and_keys(full_encoder: Encoder, tmp_path: Path) -> None:
    state = official_state_dict()
    state["pos_embed"] = torch.zeros(1, 257, 384)
    state["register_tokens"] = torch.zeros(1, 4, 384)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match="pos_embed") as err:
        load_dinov2_weights(full_encoder, str(path))
    assert str(path) in str(err.value) and "register_tokens" in str(err.value)


def test_encoder_is_frozen_and_caches_its_position_table() -> None:
    encoder = build_encoder("tiny", 56, 32, 2, 4)
    assert encoder.label == "tiny ViT (random init, untrained)" and not encoder.is_pretrained
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training
    images = torch.rand(2, 3, 56, 56) * 2 - 1
    first = encoder(images)
    assert first.shape == (2, 16, 32)
    assert torch.equal(encoder(images), first)
    with torch.no_grad():
        encoder.pos_embed.mul_(5.0)  # a changed parameter must invalidate the cached table
    assert not torch.allclose(encoder(images), first)
    assert encoder(torch.zeros(1, 3, 28, 42)).shape == (1, 6, 32)  # another grid


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_predictor_is_frame_causal(attention: str) -> None:
    torch.manual_seed(0)
    sizes = {"dim": 16, "depth": 2, "heads": 2, "dim_head": 8, "mlp_dim": 32}
    predictor = Predictor(num_patches=3, num_frames=4, attention=attention, **sizes).eval()
    x = torch.randn(2, 12, 16)  # 4 frames of 3 patches
    changed = x.clone()
    changed[:, 6:9] += torch.randn(2, 3, 16)  # frame 2
    base, after = predictor(x), predictor(changed)
    torch.testing.assert_close(after[:, :6], base[:, :6], rtol=0, atol=1e-6)  # frames 0-1 unaffected
    assert (after[:, 6:] - base[:, 6:]).abs().amax(dim=-1).min() > 1e-4  # frames 2-3 all affected


def test_fused_and_explicit_attention_agree() -> None:
    torch.manual_seed(0)
    sizes = {"dim": 24, "depth": 2, "heads": 3, "dim_head": 8, "mlp_dim": 48}
    predictor = Predictor(num_patches=5, num_frames=3, **sizes).eval()
    for frames in (3, 2):
        x = torch.randn(2, frames * 5, 24)
        predictor.set_attention("sdpa")
        fused = predictor(x)
        predictor.set_attention("explicit")
        torch.testing.assert_close(predictor(x), fused, rtol=0, atol=1e-5)


def test_forward_losses_metrics_and_gradients() -> None:
    model = tiny_model().train()
    assert not model.encoder.training and model.predictor.training
    out = model(*tiny_batch())
    suffixes = ("reconstructed", "pred")
    losses = {"loss", "z_loss", "z_visual_loss", "z_proprio_loss", "decoder_recon_loss_reconstructed"}
    errors = {f"z_{part}_err_{s}" for part in ("visual", "proprio") for s in ("pred", "full")}
    images = {f"img_{m}_{s}" for m in ("l1", "l2", "mse", "psnr", "ssim") for s in suffixes}
    expected = losses | errors | images | {"decoder_recon_loss_pred"}
    assert set(out) == expected
    for key, value in out.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        assert value.requires_grad == (key == "loss"), key
    torch.testing.assert_close(out["loss"].detach(), out["z_loss"] + out["decoder_recon_loss_reconstructed"])
    weighted = (32 * out["z_visual_loss"] + 10 * out["z_proprio_loss"]) / 42  # mean over 42 channels
    torch.testing.assert_close(out["z_loss"], weighted)
    out["loss"].backward()
    for part in (model.predictor, model.decoder, model.action_encoder, model.proprio_encoder):
        assert all(p.grad is not None for p in part.parameters())
        assert any(p.grad.abs().sum() > 0 for p in part.parameters())
    assert all(p.grad is None for p in model.encoder.parameters())


def test_decoder_loss_sends_no_gradient_upstream() -> None:
    model = tiny_model().eval()  # dropout off: two passes are comparable
    batch = tiny_batch()
    upstream = [*model.predictor.parameters(), *model.action_encoder.parameters(),
                *model.proprio_encoder.parameters()]

    def grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        out = model(*batch)
        out["loss"].backward()
        return out["decoder_recon_loss_reconstructed"], [p.grad.clone() for p in upstream]

    recon_a, grads_a = grads()
    with torch.no_grad():
        model.decoder.to_image[-1].weight.mul_(3.0)  # a different decoder, a different decoder loss
    recon_b, grads_b = grads()
    assert not torch.allclose(recon_a, recon_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_optional_outputs() -> None:
    model = tiny_model().eval()
    out = model(*tiny_batch(), decode_pred=False)
    assert not any(k.endswith("_pred") and ("img" in k or "decoder" in k) for k in out)
    images = model(*tiny_batch(), return_images=True)
    assert images["visual_reconstructed"].shape == (2, 4, 3, 64, 64)
    assert images["visual_pred"].shape == (2, 3, 3, 64, 64)
    with pytest.raises(ValueError, match="expected 4 frames"):
        model(*tiny_batch(frames=5))


def test_channels_last_decoder_matches_the_default_layout() -> None:
    model = tiny_model().eval()
    z = model.encode(*tiny_batch()).detach().requires_grad_()  # (2, 4, 16, 42)
    keys = {k: v.clone() for k, v in model.decoder.state_dict().items()}

    def decode() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.decoder.zero_grad(set_to_none=True)
        images = model.decode(z)  # (2, 4, 3, 64, 64)
        images.square().mean().backward()
        return images.detach(), [p.grad.clone() for p in model.decoder.parameters()]

    default, default_grads = decode()
    model.decoder.to_channels_last()
    convs = [m.weight for m in model.decoder.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not convs[0].is_contiguous()  # the 3x3 weights really changed layout
    grid = z[0, :, :, :32].detach().reshape(4, 4, 4, 32).permute(0, 3, 1, 2).contiguous()
    assert model.decoder(grid).is_contiguous(memory_format=torch.channels_last)
    nhwc, nhwc_grads = decode()
    assert nhwc.shape == default.shape == (2, 4, 3, 64, 64)
    torch.testing.assert_close(nhwc, default, rtol=1e-5, atol=1e-6)
    for a, b in zip(nhwc_grads, default_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    state = model.decoder.state_dict()
    assert state.keys() == keys.keys() and all(torch.equal(state[k], keys[k]) for k in keys)


def test_image_metrics_stay_fp32_under_autocast() -> None:
    model = tiny_model().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(*tiny_batch())
    assert all(out[f"img_{m}_pred"].dtype == torch.float32 for m in ("ssim", "psnr", "l1"))
    assert all(torch.isfinite(v) for v in out.values())
    visual = tiny_batch()[0]
    same = image_metrics(visual, visual.clone(), "x")
    assert same["img_ssim_x"].item() == pytest.approx(1.0) and same["img_mse_x"].item() == 0.0


def test_rollout_is_bounded_and_replaces_actions() -> None:
    model = tiny_model().eval()
    visual, proprio, action = tiny_batch(frames=7)
    with torch.no_grad():
        z = model.rollout(visual[:, :3], proprio[:, :3], action[:, :5], horizon=3)
        assert z.shape == (2, 6, 16, 404 - 384 + 32)
        expected = model.encode_actions(action[:, 3:5])  # the predicted frames 3 and 4
        torch.testing.assert_close(z[:, 3:5, :, -10:], expected)
        assert model.rollout(visual[:, :3], proprio[:, :3], action[:, :3], horizon=0).shape[1] == 3
    with pytest.raises(ValueError, match="needs 6 actions"):
        model.rollout(visual[:, :3], proprio[:, :3], action[:, :5], horizon=4)
    errors = model.rollout_error(visual, proprio, action, horizon=4)
    assert set(errors) == {"z_visual_err_rollout", "z_proprio_err_rollout"}
    assert all(torch.isfinite(v) for v in errors.values())
    one = model.rollout_error(visual, proprio, action, horizon=6, context=1)
    assert set(one) == {"z_visual_err_rollout_1framestart", "z_proprio_err_rollout_1framestart"}
    with pytest.raises(ValueError):
        model.rollout_error(visual, proprio, action, horizon=5)  # would need 8 frames


def test_bad_configurations_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="Unknown encoder"):
        build_encoder("dinov2_vitb14", 196, 32, 2, 4)
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        build_encoder("tiny", 200, 32, 2, 4)
    with pytest.raises(ConfigError, match="concat_dim"):
        tiny_model(concat_dim=0)
    with pytest.raises(ConfigError, match="encoder_img_size=56"):
        tiny_model(encoder_img_size=70)


def test_parameter_groups_cover_the_trainable_parameters() -> None:
    model = tiny_model()
    groups = model.trainable_parameter_groups()
    assert set(groups) == {"predictor", "decoder", "action_proprio_encoders"}
    grouped = {id(p) for params in groups.values() for p in params}
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}
    assert sum(len(v) for v in groups.values()) == len(grouped)
