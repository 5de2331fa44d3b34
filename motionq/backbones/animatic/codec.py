"""A small learned per-frame autoencoder: the built-in model's "VAE".

Why learned rather than pixel-unshuffle: with raw pixels a 32x32 frame becomes 16 tokens of 192
values each, and a small transformer spends its width passing pixel noise through instead of
coordinating sprites across frames (see shared/method.md). A per-frame conv autoencoder turns a
frame into an 8x8x8 latent: 16 tokens of 32 smooth values after the (1, 2, 2) patchify.

It speaks the `AutoencoderKLWan` dialect WanPipeline expects: `config.z_dim`,
`config.scale_factor_spatial/temporal`, `config.latents_mean/std`, `encode()` returning a
`latent_dist`, `decode(z, return_dict=False)[0]` giving video in [-1, 1] as (B, C, F, H, W).
Time is not compressed (temporal factor 1), so a clip of F frames has F latent frames.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class SpriteCodec(ModelMixin, ConfigMixin):
    """Per-frame conv autoencoder with a deterministic latent (spatial factor 4, temporal 1)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        z_dim: int = 8,
        hidden: int = 48,
        scale_factor_spatial: int = 4,
        scale_factor_temporal: int = 1,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ):
        super().__init__()
        if scale_factor_spatial != 4:
            raise ValueError("SpriteCodec is built for a spatial factor of 4")
        h = hidden
        # The encoder runs on every training batch, so it downsamples first (cheap on CPU);
        # the decoder only runs when sampling and can afford full-resolution convs.
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, h, 4, stride=2, padding=1),  # /2
            _block(h, h),
            nn.Conv2d(h, 2 * h, 4, stride=2, padding=1),  # /4
            _block(2 * h, 2 * h),
            nn.Conv2d(2 * h, z_dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(z_dim, 2 * h, 3, padding=1),
            _block(2 * h, 2 * h),
            nn.ConvTranspose2d(2 * h, h, 4, stride=2, padding=1),  # x2
            _block(h, h),
            nn.ConvTranspose2d(h, h, 4, stride=2, padding=1),  # x4
            _block(h, h),
            nn.Conv2d(h, in_channels, 3, padding=1),
        )

    @staticmethod
    def _frames(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        b, c, f, hh, ww = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, hh, ww), b, f

    @staticmethod
    def _video(x: torch.Tensor, b: int, f: int) -> torch.Tensor:
        return x.reshape(b, f, *x.shape[1:]).permute(0, 2, 1, 3, 4)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Video (B, 3, F, H, W) in [-1, 1] -> raw latent (B, z, F, H/4, W/4)."""
        frames, b, f = self._frames(x)
        return self._video(self.encoder(frames.to(self.dtype)), b, f)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent (B, z, F, h, w) -> video (B, 3, F, 4h, 4w) in [-1, 1]."""
        frames, b, f = self._frames(z)
        return self._video(torch.tanh(self.decoder(frames.to(self.dtype))), b, f)

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        mean = self.encode_latent(x)
        # A deterministic codec shown as a Gaussian with vanishing variance, so code written for
        # AutoencoderKLWan (latent_dist.sample() / .mode()) works unchanged.
        params = torch.cat([mean, torch.full_like(mean, -30.0)], dim=1)
        dist = DiagonalGaussianDistribution(params, deterministic=True)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        video = self.decode_latent(z)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent -> the unit-scale latent the transformer works in (WanPipeline's convention)."""
        mean, std = self._stats(z)
        return (z - mean) / std

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.config.z_dim
        mean = torch.tensor(self.config.latents_mean or [0.0] * n, dtype=z.dtype, device=z.device)
        std = torch.tensor(self.config.latents_std or [1.0] * n, dtype=z.dtype, device=z.device)
        return mean.view(1, n, 1, 1, 1), std.view(1, n, 1, 1, 1)
