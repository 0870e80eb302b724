import numpy as np
import pytest
import torch

from kordiff import Box, KorDiffPipeline, Layout, ModelUnavailableError, book_caption, load_pipeline
from kordiff.loading import from_textdiffuser2, hub_reachable
from kordiff.pipeline import SCHEDULERS, resolve_seeds

LAYOUT = Layout((Box("별빛의 속삭임", 10, 12, 118, 40),))
CAPTION = book_caption("별빛의 속삭임", "a night sky full of stars")


def run(pipe, **kw):
    args = dict(num_inference_steps=3, seed=7, output_type="np")
    args.update(kw)
    return pipe(CAPTION, LAYOUT, **args)


def test_shapes_and_intermediate_results(tiny_pipe):
    out = run(tiny_pipe, num_images=2)
    assert out.images.shape == (2, 128, 128, 3)
    assert out.seeds == [7, 8] and len(out.prompt_ids) == 77
    assert "[별][빛][의]" in out.prompt_text and "<|startoftext|>book cover with a title of" in out.prompt_text
    pil = run(tiny_pipe, output_type="pil").images
    assert pil[0].size == (128, 128)


def test_deterministic_for_a_seed_and_seed_sensitive(tiny_pipe):
    a, b, c = run(tiny_pipe).images, run(tiny_pipe).images, run(tiny_pipe, seed=8).images
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_each_image_reproducible_from_its_own_seed(tiny_pipe):
    batch = run(tiny_pipe, num_images=3, seed=[5, 11, 2])
    alone = run(tiny_pipe, seed=[11])
    assert np.abs(batch.images[1] - alone.images[0]).max() < 1e-4


def test_layout_changes_the_image(tiny_pipe):
    other = Layout((Box("마음의 바다", 30, 80, 100, 110),))
    assert np.abs(run(tiny_pipe).images - tiny_pipe(CAPTION, other, num_inference_steps=3, seed=7,
                                                        output_type="np").images).max() > 1e-4


def test_batched_cfg_equals_two_unet_calls(tiny_pipe, monkeypatch):
    calls = []
    unet = tiny_pipe.unet
    real_forward = unet.forward

    def counting(sample, *a, **k):
        calls.append(sample.shape[0])
        return real_forward(sample, *a, **k)

    monkeypatch.setattr(unet, "forward", counting)
    run(tiny_pipe, num_images=2, num_inference_steps=4)
    assert calls == [4] * 4  # one call per step, uncond+cond batched
    calls.clear()
    run(tiny_pipe, num_images=2, num_inference_steps=4, guidance_scale=1.0)
    assert calls == [2] * 4  # no CFG, no uncond half


@torch.no_grad()
def _two_pass_latents(pipe, seeds, steps, guidance, swap=False):
    """Reference CFG loop: cond and uncond in two separate UNet calls per step (the seed report's loop)."""
    from kordiff.tokens import encode_prompt, uncond_prompt

    n = len(seeds)
    te, unet = pipe.text_encoder, pipe.unet
    cond = te(torch.tensor([encode_prompt(pipe.tokenizer, CAPTION, LAYOUT, fit_layout=True)] * n))[0]
    uncond = te(torch.tensor([uncond_prompt(pipe.tokenizer)] * n))[0]
    if swap:
        cond, uncond = uncond, cond
    sched = pipe.make_scheduler(None)
    sched.set_timesteps(steps)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    size = unet.config.sample_size
    latents = torch.cat([torch.randn((1, 4, size, size), generator=g) for g in generators]) * sched.init_noise_sigma
    for t in sched.timesteps:
        x = sched.scale_model_input(latents, t)
        e_cond = unet(x, t, encoder_hidden_states=cond).sample
        e_uncond = unet(x, t, encoder_hidden_states=uncond).sample
        latents = sched.step(e_uncond + guidance * (e_cond - e_uncond), t, latents, generator=generators).prev_sample
    return latents


def test_batched_cfg_matches_the_two_pass_loop_numerically(tiny_pipe):
    seeds, steps, guidance = [7, 8], 4, 7.5
    batched = tiny_pipe(CAPTION, LAYOUT, num_images=2, num_inference_steps=steps, guidance_scale=guidance,
                        seed=seeds, output_type="latent").images
    reference = _two_pass_latents(tiny_pipe, seeds, steps, guidance)
    rel = ((batched - reference).norm() / reference.norm()).item()
    assert rel < 1e-4, f"batched CFG differs from the two-pass loop (relative error {rel:.2e})"
    # the check has teeth: the cond/uncond halves swapped give a clearly different result
    swapped = _two_pass_latents(tiny_pipe, seeds, steps, guidance, swap=True)
    assert ((swapped - reference).norm() / reference.norm()).item() > 100 * max(rel, 1e-6)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_runs(tiny_pipe, name):
    out = run(tiny_pipe, scheduler=name)
    assert np.isfinite(out.images).all()


def test_img2img_keeps_structure(tiny_pipe):
    base = run(tiny_pipe, output_type="pil").images[0]
    near = run(tiny_pipe, image=base, strength=0.2, num_inference_steps=10, output_type="np").images[0]
    far = run(tiny_pipe, seed=99, output_type="np").images[0]
    base_np = np.asarray(base, dtype=np.float32) / 255
    assert np.abs(near - base_np).mean() < np.abs(far - base_np).mean()


def test_bad_inputs_raise_clear_errors(tiny_pipe):
    with pytest.raises(ValueError, match="num_images"):
        run(tiny_pipe, num_images=0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        run(tiny_pipe, num_inference_steps=0)
    with pytest.raises(ValueError, match="scheduler"):
        run(tiny_pipe, scheduler="nope")
    with pytest.raises(TypeError, match="Layout"):
        tiny_pipe(CAPTION, [("x", 0, 0, 1, 1)])
    with pytest.raises(ValueError, match="seeds"):
        resolve_seeds([1, 2], 3)


def test_empty_layout_generates(tiny_pipe):
    out = tiny_pipe(CAPTION, Layout(), num_inference_steps=2, seed=1, output_type="np")
    assert out.images.shape[0] == 1 and "<|startoftext|>" in out.prompt_text


def test_save_load_round_trip(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    loaded = KorDiffPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert len(loaded.tokenizer) == len(tiny_pipe.tokenizer)
    assert np.array_equal(run(tiny_pipe).images, run(loaded).images)
    via_loader = load_pipeline(str(tmp_path / "pipe"))
    assert via_loader.unet.dtype == torch.float32


def test_offline_loading_fails_with_one_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_reachable.cache_clear()
    with pytest.raises(ModelUnavailableError) as e:
        from_textdiffuser2()
    msg = str(e.value)
    assert "JingyeChen22/textdiffuser2-full-ft" in msg and "huggingface-cli download" in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(ModelUnavailableError, match="there is no directory './no/such/dir'"):
        load_pipeline("./no/such/dir")
    with pytest.raises(ModelUnavailableError, match="someone/kordiff-ko"):
        KorDiffPipeline.from_pretrained("someone/kordiff-ko")


def test_attention_uses_sdpa(tiny_pipe):
    from diffusers.models.attention_processor import AttnProcessor2_0

    assert all(isinstance(p, AttnProcessor2_0) for p in tiny_pipe.unet.attn_processors.values())


def test_from_textdiffuser2_assembles_td2_with_sd15_parts(tmp_path):
    """TD2's UNet/text encoder + SD1.5's VAE/scheduler/tokenizer from local folders laid out like the Hub repos."""
    from kordiff.tiny import sd15_scheduler, tiny_text_encoder, tiny_unet, tiny_vae
    from kordiff.tokens import clip_tokenizer_from_assets

    td2, sd = tmp_path / "td2", tmp_path / "sd15"
    torch.manual_seed(0)
    tiny_unet().save_pretrained(td2 / "unet")
    td2_encoder = tiny_text_encoder(49408 + 2080 + 95)
    td2_encoder.save_pretrained(td2 / "text_encoder")
    tiny_vae().save_pretrained(sd / "vae")
    sd15_scheduler().save_pretrained(sd / "scheduler")
    clip_tokenizer_from_assets().save_pretrained(sd / "tokenizer")

    pipe = from_textdiffuser2(scheme="jamo", td2_repo=str(td2), sd_repo=str(sd))
    pipe.set_progress_bar_config(disable=True)
    assert len(pipe.tokenizer) == 49408 + 2080 + 95 + 67
    rows = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert rows.shape[0] == len(pipe.tokenizer)
    assert torch.equal(rows[:51583], td2_encoder.get_input_embeddings().weight.detach())  # TD2's rows untouched
    out = pipe(CAPTION, LAYOUT, num_inference_steps=2, seed=0, output_type="np")
    assert "[ᄇ][ᅧ][ᆯ]" in out.prompt_text and out.images.shape == (1, 128, 128, 3)
