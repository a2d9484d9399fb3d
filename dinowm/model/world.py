# SPDX-License-Identifier: MIT
"""The DINO world model: frozen encoder, proprio/action embeddings, predictor and decoder."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinowm.errors import ConfigError, DinowmError
from dinowm.model.decoder import Decoder
from dinowm.model.encoder import Encoder
from dinowm.model.predictor import Predictor

DECODER_SCALE = 16  # the decoder upsamples the patch grid 16x (14 -> 224 px)


def _no_mark(part: str) -> None:
    """A forward pass that times none of its parts."""


class FrameEmbedding(nn.Module):
    """One linear map per frame, a kernel-1 Conv1d as in the public code:
    (B, T, in) -> (B, T, out)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv1d(in_dim, out_dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.transpose(1, 2)).transpose(1, 2)


def ssim(x: Tensor, y: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of (N, C, H, W) images, Gaussian window, constants for a data range of 1 (as
    published)."""
    c = x.shape[1]
    coords = torch.arange(window_size, dtype=x.dtype, device=x.device) - window_size // 2
    g = torch.exp(-coords.pow(2) / (2 * sigma**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(c, 1, window_size, window_size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, padding=window_size // 2, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x.pow(2), blur(y * y) - mu_y.pow(2)
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    return (num / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))).mean()


def image_metrics(images: Tensor, target: Tensor, suffix: str) -> dict[str, Tensor]:
    """l1, l2, mse, psnr, ssim per frame over the batch, averaged over frames (the public
    eval_images)."""
    per_frame: dict[str, list[Tensor]] = {k: [] for k in ("l1", "l2", "mse", "psnr", "ssim")}
    # fp32 even under autocast: a bf16 grouped 11x11 conv is both slow (cuDNN) and imprecise
    with torch.autocast(images.device.type, enabled=False):
        for t in range(images.shape[1]):
            x, y = images[:, t].float(), target[:, t].float()  # (B, 3, H, W)
            mse = (x - y).pow(2).mean()
            per_frame["l1"].append((x - y).abs().mean())
            per_frame["l2"].append(mse)
            per_frame["mse"].append(mse)
            per_frame["psnr"].append(
                -10 * torch.log10(mse)
            )  # 20 log10(1 / rmse): peak 1, as published
            per_frame["ssim"].append(ssim(x, y))
    return {f"img_{k}_{suffix}": torch.stack(v).mean() for k, v in per_frame.items()}


class WorldModel(nn.Module):
    """DINO-WM: predicts the next frames' latents (visual, proprio, action channels per patch)."""

    def __init__(
        self,
        encoder: Encoder,
        proprio_dim: int,
        action_dim: int,
        num_hist: int,
        num_pred: int = 1,
        action_emb_dim: int = 10,
        proprio_emb_dim: int = 10,
        num_action_repeat: int = 1,
        num_proprio_repeat: int = 1,
        concat_dim: int = 1,
        predictor_kwargs: dict | None = None,
        decoder_kwargs: dict | None = None,
        img_size: int = 224,
        encoder_img_size: int = 196,
        decoder: bool = True,
    ) -> None:
        super().__init__()
        if concat_dim != 1:
            raise ConfigError(
                f"model.concat_dim={concat_dim} (proprio/action as extra tokens) is not "
                "implemented; use concat_dim=1 (embeddings tiled on every patch, the published "
                "setting)."
            )
        grid = encoder_img_size // encoder.patch_size
        if encoder_img_size % encoder.patch_size or img_size != DECODER_SCALE * grid:
            raise ConfigError(
                f"Image size {img_size} and encoder image size {encoder_img_size} do not fit: the "
                f"encoder needs a multiple of {encoder.patch_size} and the decoder gives "
                f"{DECODER_SCALE} px per patch; use "
                f"encoder_img_size={img_size // DECODER_SCALE * encoder.patch_size}."
            )
        self.num_hist, self.num_pred = num_hist, num_pred
        self.img_size, self.encoder_img_size, self.grid = img_size, encoder_img_size, grid
        self.num_patches = grid * grid
        self.num_action_repeat, self.num_proprio_repeat = num_action_repeat, num_proprio_repeat
        self.visual_dim = encoder.embed_dim
        # perf.encoder_inference_mode (set by Mode.prepare): the frozen encoder's forward under
        # inference_mode, which skips autograd's version counters; its tokens only ever enter
        # concatenations, which save nothing for backward
        self.encoder_inference_mode = False
        self.proprio_emb_dim = proprio_emb_dim
        self.proprio_channels = proprio_emb_dim * num_proprio_repeat
        self.action_channels = action_emb_dim * num_action_repeat
        self.emb_dim = self.visual_dim + self.proprio_channels + self.action_channels  # 404
        self.encoder = encoder
        self.proprio_encoder = FrameEmbedding(proprio_dim, proprio_emb_dim)
        self.action_encoder = FrameEmbedding(action_dim, action_emb_dim)
        self.predictor = Predictor(
            self.num_patches, num_hist, self.emb_dim, **(predictor_kwargs or {})
        )
        # model.decoder=off (planning-only runs): no decoder, no reconstructions, no image metrics
        self.decoder = (
            Decoder(in_dim=self.visual_dim, **(decoder_kwargs or {})) if decoder else None
        )

    @property
    def has_decoder(self) -> bool:
        """False for a model built with model.decoder=off."""
        return self.decoder is not None

    def _tile(self, emb: Tensor, repeat: int) -> Tensor:
        """(B, F, E) -> (B, F, P, E*repeat): the embedding repeated, then copied onto every
        patch."""
        return emb.repeat(1, 1, repeat).unsqueeze(2).expand(-1, -1, self.num_patches, -1)

    def encode_visual(self, visual: Tensor) -> Tensor:
        """Frames (B, F, 3, img, img) in [-1, 1] -> patch tokens (B, F, P, D_vis), no gradient."""
        frames = visual.flatten(0, 1)  # (B*F, 3, img, img)
        if frames.shape[-2:] != (self.encoder_img_size, self.encoder_img_size):
            # torchvision's Resize on tensors, as the public model does (bilinear, antialiased).
            size = (self.encoder_img_size, self.encoder_img_size)
            frames = F.interpolate(
                frames, size=size, mode="bilinear", align_corners=False, antialias=True
            )
        with torch.inference_mode() if self.encoder_inference_mode else torch.no_grad():
            tokens = self.encoder(frames)  # (B*F, P, D_vis)
        return tokens.unflatten(0, visual.shape[:2])

    def encode_actions(self, action: Tensor) -> Tensor:
        """Actions (B, F, action_dim) -> action channels (B, F, P, action_emb*repeat)."""
        return self._tile(self.action_encoder(action), self.num_action_repeat)

    def encode(
        self, visual: Tensor | None, proprio: Tensor, action: Tensor, tokens: Tensor | None = None
    ) -> Tensor:
        """Observations and actions -> latents z (B, F, P, D) laid out [visual | proprio | action].

        `tokens` (B, F, P, D_vis): the encoder's output for these frames (the feature cache, a
        planner's start frames), in place of `visual`.
        """
        if tokens is None:
            if visual is None:
                raise ValueError("encode() needs the frames or their tokens")
            vis = self.encode_visual(visual)
        else:
            vis = tokens.to(proprio.dtype)
        prop = self._tile(self.proprio_encoder(proprio), self.num_proprio_repeat)  # (B, F, P, 10)
        return torch.cat([vis, prop, self.encode_actions(action)], dim=-1)  # (B, F, P, 404)

    def predict(self, z_hist: Tensor) -> Tensor:
        """Latents (B, T, P, D) -> predictions (B, T, P, D); output frame t predicts frame
        t + num_pred."""
        b, t, p, d = z_hist.shape
        return self.predictor(z_hist.reshape(b, t * p, d)).reshape(b, t, p, d)

    def decode(self, z: Tensor) -> Tensor:
        """Latents (B, T, P, D) -> images (B, T, 3, img, img) from the visual channels only."""
        if self.decoder is None:
            raise DinowmError(
                "this model has no decoder (model.decoder=off): nothing decodes "
                "latents to images; train with model.decoder=on for pictures"
            )
        b, t = z.shape[:2]
        vis = z[..., : self.visual_dim].reshape(b * t, self.grid, self.grid, self.visual_dim)
        return self.decoder(vis.permute(0, 3, 1, 2)).unflatten(0, (b, t))  # (B, T, 3, img, img)

    def latent_errors(self, z_pred: Tensor, z_tgt: Tensor, suffix: str) -> dict[str, Tensor]:
        """MSE of the visual channels and of the proprio embedding (one patch, one repeat)."""
        v, p = self.visual_dim, self.visual_dim + self.proprio_emb_dim
        return {
            f"z_visual_err_{suffix}": F.mse_loss(z_pred[..., :v], z_tgt[..., :v]),
            f"z_proprio_err_{suffix}": F.mse_loss(z_pred[:, :, 0, v:p], z_tgt[:, :, 0, v:p]),
        }

    def forward(
        self,
        visual: Tensor,
        proprio: Tensor,
        action: Tensor,
        *,
        decode_pred: bool = True,
        return_images: bool = False,
        image_metrics_on: bool = True,
        tokens: Tensor | None = None,
        keep_pred_graph: bool = False,
        reconstruct: bool = True,
        mark: Callable[[str], None] | None = None,
        split_loss: bool = False,
    ) -> dict[str, Tensor]:
        """Training losses and metrics for frames (B, num_hist + num_pred, ...); only `loss`
        has grad.

        image_metrics_on=False skips the per-frame image metrics (the fast path computes them on
        the steps that decode predictions). keep_pred_graph=True is the public code's cost: the
        predicted frames are decoded with autograd and returned under "_pred_graph" so the caller
        can keep the graph alive (reference mode only). reconstruct=False leaves the decoder out
        of this step (training.decoder_every): `loss` is then z_loss alone, and the predictor's
        gradients are the same as with it, because the decoder only ever sees detached latents.
        Without a decoder (model.decoder=off) nothing is decoded. `mark(part)` is called after
        each part (a profile times them); split_loss adds z_loss and the reconstruction loss
        with their graphs as "_z_loss" and "_recon_loss", for a backward in two.
        """
        mark = mark or _no_mark
        if visual.shape[1] != self.num_hist + self.num_pred:
            raise ValueError(
                f"expected {self.num_hist + self.num_pred} frames, got {visual.shape[1]}"
            )
        z = self.encode(visual, proprio, action, tokens)  # (B, F, P, D)
        mark("encoder_forward")
        z_tgt = z[:, self.num_pred :].detach()  # (B, num_hist, P, D)
        z_pred = self.predict(z[:, : self.num_hist])  # (B, num_hist, P, D)
        out, z_loss = self._latent_losses(z_pred, z_tgt)
        mark("predictor_forward")
        recon = self._reconstruct(
            z, visual, z_loss, out, reconstruct and self.has_decoder, split_loss
        )
        mark("decoder_forward")
        if keep_pred_graph and self.has_decoder:
            out["_pred_graph"] = self.decode(z_pred)  # the public code's unused autograd graph
        with torch.no_grad():
            self._metrics(
                out,
                z_pred,
                z_tgt,
                visual,
                recon,
                decode_pred and self.has_decoder,
                image_metrics_on,
                return_images,
            )
        if return_images and recon is not None:
            out["visual_reconstructed"] = recon.detach()
        mark("metrics")
        return out

    def _latent_losses(self, z_pred: Tensor, z_tgt: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The predictor's loss over the visual and proprio channels (action channels excluded),
        with its parts, detached; and the loss with its graph."""
        v, vp = self.visual_dim, self.visual_dim + self.proprio_channels
        z_loss = F.mse_loss(z_pred[..., :vp], z_tgt[..., :vp])  # action channels excluded
        z_visual_loss = F.mse_loss(z_pred[..., :v], z_tgt[..., :v])
        z_proprio_loss = F.mse_loss(z_pred[..., v:vp], z_tgt[..., v:vp])
        out = {
            "z_loss": z_loss.detach(),
            "z_visual_loss": z_visual_loss.detach(),
            "z_proprio_loss": z_proprio_loss.detach(),
        }
        return out, z_loss

    def _reconstruct(
        self,
        z: Tensor,
        visual: Tensor,
        z_loss: Tensor,
        out: dict[str, Tensor],
        reconstruct: bool,
        split_loss: bool,
    ) -> Tensor | None:
        """The training loss into out["loss"]: z_loss, plus the reconstruction loss of the true
        frames' latents when the decoder trains on this step; the reconstructed frames."""
        recon = None
        if reconstruct:
            recon = self.decode(
                z.detach()
            )  # (B, F, 3, img, img): the decoder learns from true latents only
            recon_loss = F.mse_loss(recon, visual)
            out["loss"] = z_loss + recon_loss
            out["decoder_recon_loss_reconstructed"] = recon_loss.detach()
            if split_loss:
                out["_recon_loss"] = recon_loss
        else:
            out["loss"] = z_loss
        if split_loss:
            out["_z_loss"] = z_loss
        return recon

    def _metrics(
        self,
        out: dict[str, Tensor],
        z_pred: Tensor,
        z_tgt: Tensor,
        visual: Tensor,
        recon: Tensor | None,
        decode_pred: bool,
        image_metrics_on: bool,
        return_images: bool,
    ) -> None:
        """Latent errors, image metrics and the decoded predictions into `out` (no grad)."""
        out.update(self.latent_errors(z_pred, z_tgt, "full"))
        out.update(
            self.latent_errors(z_pred[:, -self.num_pred :], z_tgt[:, -self.num_pred :], "pred")
        )
        if image_metrics_on and recon is not None:
            out.update(image_metrics(recon, visual, "reconstructed"))
        if decode_pred:
            pred_images = self.decode(z_pred)  # (B, num_hist, 3, img, img), a metric only
            out["decoder_recon_loss_pred"] = F.mse_loss(pred_images, visual[:, self.num_pred :])
            last = pred_images[:, -self.num_pred :]  # the frames after the context
            if image_metrics_on:
                out.update(image_metrics(last, visual[:, self.num_hist :], "pred"))
            if return_images:
                out["visual_pred"] = pred_images

    def rollout(self, visual0: Tensor, proprio0: Tensor, actions: Tensor, horizon: int) -> Tensor:
        """Open loop from n context frames, `horizon` predicted frames ->
        z (B, n + horizon, P, D)."""
        # actions (B, >= n + horizon - 1, A): the first n belong to the context frames, each later
        # one replaces the action channels of the next predicted frame (the last keeps its own).
        n = visual0.shape[1]
        if horizon < 0 or actions.shape[1] < n + horizon - 1:
            raise ValueError(
                f"rollout of {horizon} frames from {n} needs {n + horizon - 1} actions"
            )
        z = self.encode(visual0, proprio0, actions[:, :n])  # (B, n, P, D)
        for step in range(horizon):
            z_new = self.predict(z[:, -self.num_hist :])[:, -1:]  # (B, 1, P, D)
            if step < horizon - 1:
                act = self.encode_actions(actions[:, n + step : n + step + 1])
                z_new = torch.cat([z_new[..., : -self.action_channels], act], dim=-1)
            z = torch.cat([z, z_new], dim=1)
        return z

    @torch.no_grad()
    def rollout_error(
        self,
        visual: Tensor,
        proprio: Tensor,
        action: Tensor,
        horizon: int,
        context: int | None = None,
    ) -> dict[str, Tensor]:
        """Error of the last rolled-out frame against the encoded true frame (the public
        open-loop eval)."""
        # visual, proprio (B, >= n + horizon, ...); action (B, >= n + horizon - 1, A);
        # n = context frames
        n = self.num_hist if context is None else context
        goal = n + horizon - 1
        if horizon < 1 or visual.shape[1] <= goal:
            have = visual.shape[1]
            raise ValueError(
                f"rollout of {horizon} frames from {n} needs {goal + 1} frames, not {have}"
            )
        z = self.rollout(visual[:, :n], proprio[:, :n], action, horizon)  # (B, n + horizon, P, D)
        # the action channels of the goal latent are never compared: any action will do
        z_goal = self.encode(visual[:, goal : goal + 1], proprio[:, goal : goal + 1], action[:, :1])
        suffix = (
            "rollout" if n == self.num_hist else f"rollout_{n}framestart"
        )  # public: _1framestart
        return self.latent_errors(z[:, -1:], z_goal, suffix)

    def trainable_parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser: predictor (AdamW), decoder (Adam), action+proprio encoders
        (AdamW)."""
        return {
            "predictor": list(self.predictor.parameters()),
            **({"decoder": list(self.decoder.parameters())} if self.decoder is not None else {}),
            "action_proprio_encoders": [
                *self.action_encoder.parameters(),
                *self.proprio_encoder.parameters(),
            ],
        }

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts per part, and the trainable total."""
        parts = ("encoder", "predictor", "decoder", "action_encoder", "proprio_encoder")
        counts = {
            name: sum(p.numel() for p in getattr(self, name).parameters())
            if getattr(self, name) is not None
            else 0
            for name in parts
        }
        counts["trainable_total"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return counts
