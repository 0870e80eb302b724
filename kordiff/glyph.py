"""Glyph conditioning: the layout's exact text rendered into an image that the UNet reads as extra input channels.

TextDiffuser-1 / SD-inpainting style: `conv_in` is widened with zero-initialised input channels, so a UNet with
glyph channels added computes bitwise what it computed before, until training moves the new weights. The glyph
image is drawn white-on-black in ONE plain reference font at the image's pixel resolution and folded to the latent
resolution by space-to-depth (pixel_unshuffle), so it is lossless: a Hangul stroke is 1-4 px at 512 px, and
averaging 8x8 pixels into one latent cell would blur a syllable into a blob. With SD's 8x VAE that makes 64 glyph
channels (one per pixel of a latent cell). The UNet config records it: in_channels = out_channels + glyph channels,
so save/load round-trips through diffusers and a loaded model is recognised as glyph-conditioned.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image

from .layout import Layout

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel

GLYPH_FONT = "sans"  # NanumBarunGothic: plain, draws all 11,172 syllables


class GlyphConv2d(torch.nn.Conv2d):
    """conv_in over [latents; glyph] computed as conv(latents) + conv(glyph) with ONE weight tensor.

    The split keeps the latent part bitwise identical to the original conv (a single wider conv may sum the
    same terms in another order) and adds an exact 0 while the glyph weights are zero. The parameters and their
    names are a plain Conv2d's, so diffusers saves and loads it as an ordinary `conv_in`.
    """

    latent_channels: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, fmt = self.latent_channels, _memory_format(x)
        # dense slices in x's layout: the latent conv then runs exactly as the original conv_in did on the latents
        out = self._conv_forward(x[:, :c].contiguous(memory_format=fmt), self.weight[:, :c].contiguous(), self.bias)
        return out + self._conv_forward(x[:, c:].contiguous(memory_format=fmt), self.weight[:, c:].contiguous(), None)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    # VAE-encoded latents can be channels-last, and oneDNN sums in another order for them: keep the layout
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def concat_glyph(sample: torch.Tensor, glyph: torch.Tensor) -> torch.Tensor:
    """[latents; glyph] along channels, in the latents' memory layout (so the latent conv stays bitwise)."""
    fmt = _memory_format(sample)
    return torch.cat([sample, glyph.to(sample.dtype)], dim=1).contiguous(memory_format=fmt)


def glyph_channels(unet) -> int:
    """How many glyph input channels a UNet has (0: not glyph-conditioned)."""
    return max(0, int(unet.config.in_channels) - int(unet.config.out_channels))


def glyph_factor(channels: int) -> int:
    """Pixels per latent cell side for `channels` glyph channels (space-to-depth: channels = factor**2)."""
    f = math.isqrt(channels)
    if channels < 1 or f * f != channels:
        raise ValueError(f"glyph channels must be a square number (factor**2), got {channels}")
    return f


def use_split_conv(unet) -> None:
    """Make a glyph UNet's conv_in a GlyphConv2d sharing its parameters (idempotent; after a diffusers load)."""
    g = glyph_channels(unet)
    conv = unet.conv_in
    if g == 0 or isinstance(conv, GlyphConv2d):
        return
    split = GlyphConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                        padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                        device="meta")
    split.weight, split.bias = conv.weight, conv.bias  # same Parameter objects: optimisers and state dicts agree
    split.latent_channels = int(unet.config.out_channels)
    unet.conv_in = split


def add_glyph_channels(unet: UNet2DConditionModel, factor: int = 8) -> UNet2DConditionModel:
    """Widen `unet.conv_in` in place by factor**2 zero-initialised glyph channels; the config records it."""
    if glyph_channels(unet):
        raise ValueError(f"this UNet already has {glyph_channels(unet)} glyph channels")
    if unet.config.in_channels != unet.config.out_channels:
        raise ValueError("add_glyph_channels needs in_channels == out_channels (latents in, noise out)")
    old = unet.conv_in
    g = factor * factor
    weight = torch.zeros(old.out_channels, old.in_channels + g, *old.kernel_size, dtype=old.weight.dtype,
                         device=old.weight.device)
    weight[:, : old.in_channels] = old.weight.detach()
    old.weight = torch.nn.Parameter(weight, requires_grad=old.weight.requires_grad)
    old.in_channels += g
    unet.register_to_config(in_channels=old.in_channels)
    use_split_conv(unet)
    return unet


def render_glyph(layout: Layout, width: int, height: int, font: str = GLYPH_FONT) -> Image.Image:
    """Greyscale image: every box's exact text, white on black, as large as fits its box (grid -> pixels per axis)."""
    from .typeset import TypesetStyle, _text_mask, fit_text

    img = Image.new("L", (width, height), 0)
    style = TypesetStyle(font=font, padding=0.0, stroke="never")
    for box in layout:
        x0, y0, x1, y1 = box.to_pixels((width, height))
        fitted = fit_text(box.text, max(1, x1 - x0), max(1, y1 - y0), style)
        ix0, iy0, _, _ = fitted.ink
        ox = x0 + (x1 - x0 - fitted.width) // 2 - ix0
        oy = y0 + (y1 - y0 - fitted.height) // 2 - iy0
        # the typesetter's own mask (per-syllable font fallback); its ink is relative to the mask's corner
        glyphs = _text_mask(fitted.lines, fitted.font, fitted.size, fitted.spacing, "center", 0)
        img.paste(255, (ox, oy), glyphs)
    return img


def glyph_tensor(layout: Layout, latent_height: int, latent_width: int, channels: int,
                 font: str = GLYPH_FONT) -> torch.Tensor:
    """[channels, h, w] in [0, 1]: the glyph image at (h, w) * factor pixels folded to latent size (space-to-depth)."""
    f = glyph_factor(channels)
    img = render_glyph(layout, latent_width * f, latent_height * f, font)
    pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(1, 1, latent_height * f,
                                                                                latent_width * f)
    return F.pixel_unshuffle(pixels.float() / 255.0, f)[0]


def glyph_image(glyph: torch.Tensor) -> Image.Image:
    """The inverse view of `glyph_tensor` (for previews and tests): [G, h, w] -> greyscale image."""
    f = glyph_factor(glyph.shape[0])
    pixels = F.pixel_shuffle(glyph[None].float(), f)[0, 0]
    return Image.fromarray((pixels.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), "L")
