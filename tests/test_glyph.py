"""Glyph conditioning (kordiff.glyph): zero-init exactness, glyph images, save/load, pipeline CFG halves, CLI, app."""

import copy

import numpy as np
import pytest
import torch

from kordiff.glyph import (
    GlyphConv2d,
    add_glyph_channels,
    glyph_channels,
    glyph_image,
    glyph_tensor,
    render_glyph,
    use_split_conv,
)
from kordiff.layout import Box, Layout

LAYOUT = Layout((Box("별빛의 속삭임", 10, 20, 118, 50),))
OTHER = Layout((Box("마음의 바다", 10, 60, 118, 90),))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def glyph_pipeline(seed=0):
    """The tiny random pipeline with 64 zero-init glyph channels added (8x VAE -> factor 8)."""
    from kordiff.tiny import tiny_pipeline

    pipe = tiny_pipeline(seed=seed)
    add_glyph_channels(pipe.unet, factor=pipe.vae_scale_factor)
    return pipe


def test_zero_init_glyph_unet_is_bitwise_the_original():
    from kordiff.tiny import tiny_unet

    torch.manual_seed(0)
    base = tiny_unet().eval()
    glyph = add_glyph_channels(copy.deepcopy(base), factor=8).eval()
    assert glyph.config.in_channels == 4 + 64 and glyph_channels(glyph) == 64 and glyph_channels(base) == 0
    g = glyph_tensor(LAYOUT, 16, 16, 64)
    for size in (16, 64):  # at 64x64 a single wider conv is NOT bitwise (summation order): the split conv is
        x, hidden = torch.randn(2, 4, size, size), torch.randn(2, 77, 32)
        gl = torch.nn.functional.interpolate(g[None], size=(size, size)).expand(2, -1, -1, -1)
        with torch.no_grad():
            a = base(x, torch.tensor([10, 900]), hidden).sample
            b = glyph(torch.cat([x, gl], 1), torch.tensor([10, 900]), hidden).sample
        assert torch.equal(a, b)


def test_glyph_weights_train_and_then_change_the_output():
    from kordiff.tiny import tiny_unet

    torch.manual_seed(0)
    unet = add_glyph_channels(tiny_unet(), factor=8)
    x = torch.cat([torch.randn(1, 4, 16, 16), glyph_tensor(LAYOUT, 16, 16, 64)[None]], 1)
    unet(x, torch.tensor([500]), torch.randn(1, 77, 32)).sample.square().mean().backward()
    grad = unet.conv_in.weight.grad
    assert grad[:, 4:].abs().sum() > 0  # the new rows get gradients through the split conv
    with torch.no_grad():
        unet.conv_in.weight[:, 4:] = 0.01
    y = torch.cat([x[:, :4], glyph_tensor(OTHER, 16, 16, 64)[None]], 1)
    hidden = torch.randn(1, 77, 32)
    with torch.no_grad():
        assert not torch.equal(unet(x, torch.tensor([500]), hidden).sample, unet(y, torch.tensor([500]), hidden).sample)


def test_add_glyph_channels_refuses_twice_and_non_square_factors():
    from kordiff.tiny import tiny_unet

    unet = add_glyph_channels(tiny_unet(), factor=2)
    with pytest.raises(ValueError, match="already has 4 glyph channels"):
        add_glyph_channels(unet)
    with pytest.raises(ValueError, match="square number"):
        glyph_tensor(LAYOUT, 16, 16, 5)


def test_glyph_tensor_is_the_rendered_text_folded_losslessly():
    g = glyph_tensor(LAYOUT, 16, 16, 64)
    assert g.shape == (64, 16, 16) and 0.0 <= float(g.min()) and float(g.max()) == 1.0
    img = render_glyph(LAYOUT, 128, 128)
    assert np.array_equal(np.asarray(glyph_image(g)), np.asarray(img))  # space-to-depth loses nothing
    ink = np.argwhere(np.asarray(img) > 0)
    (y0, x0), (y1, x1) = ink.min(0), ink.max(0)
    px = LAYOUT[0].to_pixels(128)
    assert px[0] <= x0 and x1 < px[2] and px[1] <= y0 and y1 < px[3]  # all ink inside the box
    assert not torch.equal(g, glyph_tensor(OTHER, 16, 16, 64))
    assert glyph_tensor(Layout(()), 16, 16, 64).abs().sum() == 0


def test_pipeline_with_zero_glyph_channels_matches_the_plain_pipeline(tiny_pipe):
    from kordiff.tiny import tiny_pipeline

    plain, glyph = tiny_pipeline(seed=0), glyph_pipeline(seed=0)
    assert isinstance(glyph.unet.conv_in, GlyphConv2d)
    kw = dict(num_inference_steps=2, seed=3, output_type="np")
    for extra in ({}, {"image": tiny_pipe(caption="x", layout=LAYOUT, num_inference_steps=1, seed=1).images[0],
                       "strength": 0.6}):
        a = plain("book cover", LAYOUT, num_images=2, **kw, **extra).images
        b = glyph("book cover", LAYOUT, num_images=2, **kw, **extra).images
        assert np.array_equal(a, b)


@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_pipeline_builds_the_glyph_and_the_uncond_half_sees_none(guidance):
    pipe = glyph_pipeline()
    seen = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    try:
        pipe("book cover", LAYOUT, num_images=2, num_inference_steps=2, guidance_scale=guidance, seed=0,
             output_type="latent")
    finally:
        handle.remove()
    want = glyph_tensor(LAYOUT, 16, 16, 64)
    assert len(seen) == 2
    for x in seen:
        assert x.shape[1] == 4 + 64
        halves = x[:, 4:].chunk(2) if guidance > 1 else (None, x[:, 4:])
        if halves[0] is not None:
            assert x.shape[0] == 4 and halves[0].abs().sum() == 0  # unconditional rows: blank glyph
        assert all(torch.equal(row, want) for row in halves[1])  # conditional rows: this layout's glyph


def test_glyph_model_round_trips_through_save_and_load(tmp_path):
    from kordiff.pipeline import KorDiffPipeline

    pipe = glyph_pipeline()
    with torch.no_grad():
        pipe.unet.conv_in.weight[:, 4:].normal_(0, 0.02)  # as if trained: the glyph path must survive
    pipe.save_pretrained(tmp_path / "m")
    loaded = KorDiffPipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    assert glyph_channels(loaded.unet) == 64 and isinstance(loaded.unet.conv_in, GlyphConv2d)
    assert torch.equal(loaded.unet.conv_in.weight, pipe.unet.conv_in.weight)
    kw = dict(num_inference_steps=2, seed=5, output_type="np")
    assert np.array_equal(pipe("c", LAYOUT, **kw).images, loaded("c", LAYOUT, **kw).images)
    assert not np.array_equal(loaded("c", LAYOUT, **kw).images, loaded("c", OTHER, **kw).images)


def test_use_split_conv_is_idempotent_and_shares_parameters():
    from kordiff.tiny import tiny_unet

    unet = add_glyph_channels(tiny_unet(), factor=2)
    conv = unet.conv_in
    use_split_conv(unet)
    assert unet.conv_in is conv and conv.latent_channels == 4
    params = {id(p) for p in unet.parameters()}
    assert id(conv.weight) in params


@pytest.fixture(scope="module")
def glyph_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("glyph_model") / "model"
    glyph_pipeline().save_pretrained(path)
    return path


def test_cli_generates_with_a_glyph_model(glyph_model_dir, tmp_path):
    from kordiff.__main__ import main

    out = tmp_path / "out"
    assert main(["generate", "--title", "별빛의 속삭임", "--model", str(glyph_model_dir), "--steps", "2",
                 "--seed", "5", "--mode", "diffusion", "--out", str(out)]) == 0
    assert len(list(out.glob("cover*_diffusion_seed5.png"))) == 1


def test_app_generates_with_a_glyph_model(glyph_model_dir):
    import app
    from kordiff.shared import pipeline_for

    cover_app = app.CoverApp(app.AppConfig(model=str(glyph_model_dir), planner="heuristic"))
    rows = cover_app.plan("마음의 바다", "", "", "", "heuristic", "diffusion")[1]
    *_, last = cover_app.generate("마음의 바다", "", rows, num_images=1, steps=1, guidance=7.5, scheduler="ddim",
                                  seed=3, randomise=False, mode="diffusion")
    gallery = last[0]  # the last yield carries every output (gallery first)
    assert len(gallery) == 1 and glyph_channels(pipeline_for(str(glyph_model_dir)).unet) == 64


def test_training_with_glyph_conditioning_trains_the_new_rows_and_saves_a_glyph_model(tmp_path):
    from accelerate.state import AcceleratorState

    from kordiff.pipeline import KorDiffPipeline
    from kordiff.tiny import tiny_pipeline
    from training import dataset as ds
    from training.synth import SynthConfig, synthesize
    from training.train import TrainConfig, batch_stream, build_data, build_models, train

    synthesize(SynthConfig(n=8, out=tmp_path / "synth", size=128, workers=1))
    base = tmp_path / "base"
    tiny_pipeline(seed=0).save_pretrained(base)
    cfg = TrainConfig(pretrained_model=str(base), train_data_dir=(str(tmp_path / "synth"),),
                      output_dir=str(tmp_path / "out"), max_train_steps=2, train_batch_size=4, checkpointing_steps=0,
                      validation_steps=0, learning_rate=1e-3, report_to=None, conditioning="glyph", cfg_dropout=0.5,
                      shuffle_lines=False)
    # the batches carry each sample's glyph (from its cached boxes), blank where the prompt was dropped
    data = build_data(cfg, build_models(cfg))
    batch = next(batch_stream(data, ds.DataPosition()))
    assert batch["glyph"].shape == (4, 64, 16, 16)
    dropped = (batch["input_ids"] == data.pad_id).all(1)
    for row, d in zip(batch["glyph"], dropped):
        assert (row.abs().sum() == 0) == bool(d)
    AcceleratorState._reset_state(True)
    out = train(cfg)
    AcceleratorState._reset_state(True)
    trained = KorDiffPipeline.from_pretrained(out)
    assert glyph_channels(trained.unet) == 64 and trained.unet.conv_in.weight[:, 4:].abs().sum() > 0
    trained.set_progress_bar_config(disable=True)
    assert trained("c", LAYOUT, num_inference_steps=1, seed=0).images[0].size == (128, 128)
    with pytest.raises(ValueError, match="glyph-conditioned"):
        build_models(TrainConfig(pretrained_model=str(out), train_data_dir=("x",), conditioning="tokens"))


def test_shipped_default_config_is_the_studys_choice_glyph_plus_syllable():
    from pathlib import Path

    from training.train import TrainConfig

    configs = Path(__file__).resolve().parent.parent / "training" / "configs"
    cfg = TrainConfig.from_json(configs / "train_default.json")  # the study's decision (README)
    assert cfg.conditioning == "glyph" and cfg.scheme == "syllable"
    tokens = TrainConfig.from_json(configs / "train_tokens.json")  # TD2's recipe: character tokens only
    assert tokens.conditioning == "tokens" and tokens == cfg.__class__(
        **{**cfg.to_dict(), "conditioning": "tokens", "output_dir": tokens.output_dir})
