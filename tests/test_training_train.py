"""End to end on CPU with tiny models: synth -> cache -> train -> checkpoint -> interrupt -> resume (bitwise equal to
an uninterrupted run) -> load in kordiff and generate -> publish dry run; plus LoRA, ko-clip init, data order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kordiff.loading import TD2_VOCAB
from training import dataset as ds
from training.synth import SynthConfig, synthesize

STEPS = 4


pytestmark = pytest.mark.usefixtures("fresh_accelerate")


@pytest.fixture(scope="module")
def covers(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthesize(SynthConfig(n=16, out=out, size=128, workers=1))
    return out


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    from kordiff.tiny import tiny_pipeline

    d = tmp_path_factory.mktemp("base")
    tiny_pipeline(seed=0).save_pretrained(str(d))
    return d


def _cfg(base_dir, covers, out, cache, **kw):
    from training.train import TrainConfig

    defaults = dict(
        pretrained_model=str(base_dir),
        train_data_dir=(str(covers),),
        output_dir=str(out),
        cache_dir=str(cache),
        max_train_steps=STEPS,
        train_batch_size=2,
        checkpointing_steps=2,
        checkpoints_total_limit=1,
        validation_steps=2,
        validation_titles=("별빛의 속삭임",),
        validation_inference_steps=1,
        use_ema=True,
        learning_rate=1e-3,
        report_to=None,
    )
    return TrainConfig(**{**defaults, **kw})


def _weights(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for sub in ("unet", "text_encoder"):
        for f in sorted((d / sub).glob("*.safetensors")):
            out.update({f"{sub}.{k}": v for k, v in load_file(str(f)).items()})
    return out


class Interrupt(Exception):
    pass


def test_interrupted_and_resumed_run_equals_uninterrupted_run_then_loads_generates_and_publishes(
    base_dir, covers, tmp_path
):
    from kordiff import Box, Layout, load_pipeline
    from training.checkpoint import complete_checkpoints as checkpoints
    from training.publish import PublishConfig, publish
    from training.train import RUN_INFO, train

    cache = tmp_path / "cache"
    # warm-up + cosine and accumulation 2: a resume that lost the LR schedule or the micro-batch phase would differ
    sched = dict(lr_scheduler="cosine", lr_warmup_steps=1, gradient_accumulation_steps=2)
    straight = train(_cfg(base_dir, covers, tmp_path / "straight", cache, **sched))
    assert len(list(cache.iterdir())) == 1, "one cache, built once"

    def crash_after_3(step):
        if step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_cfg(base_dir, covers, tmp_path / "resumed", cache, **sched), on_step=crash_after_3)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    assert [p.name for p in checkpoints(tmp_path / "resumed")] == ["checkpoint-2"]
    resumed = train(_cfg(base_dir, covers, tmp_path / "resumed", cache, resume_from_checkpoint="latest", **sched))
    assert [p.name for p in checkpoints(resumed)] == ["checkpoint-4"], "rotation keeps checkpoints_total_limit"

    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    base = _weights(base_dir)
    assert any(not torch.equal(a[k], base[k]) for k in a), "training changed nothing"
    info = json.loads((straight / RUN_INFO).read_text(encoding="utf-8"))
    assert info["steps"] == STEPS and info["validation"] and (straight / "validation" / "step-000002").is_dir()

    pipe = load_pipeline(str(resumed), device="cpu")
    out = pipe(
        "book cover with a title of 별빛", Layout((Box("별빛", 10, 10, 100, 40),)), num_inference_steps=2, seed=0
    )
    assert out.images[0].size == (128, 128)

    files = publish(PublishConfig(resumed, "someone/kordiff-tiny", dry_run=True))
    assert "model_index.json" in files and "unet/config.json" in files
    assert not any(f.startswith(("checkpoint-", "cache/", "validation/")) for f in files)
    card = (resumed / "README.md").read_text(encoding="utf-8")
    assert "OpenRAIL" in card and "| `max_train_steps` | `4` |" in card
    # nothing of this machine is published: the base was a local folder, so no base_model at all
    from training.publish import public_run_info

    public = json.dumps(public_run_info(resumed), ensure_ascii=False)
    assert "base_model:" not in card and str(tmp_path) not in card and str(tmp_path) not in public
    assert str(base_dir) not in card + public and str(covers) not in card + public


def test_lora_trains_adapters_and_only_hangul_rows(base_dir, covers, tmp_path):
    from kordiff import load_pipeline
    from training.train import train

    out = train(
        _cfg(
            base_dir,
            covers,
            tmp_path / "lora",
            tmp_path / "cache",
            lora_rank=4,
            use_ema=False,
            checkpointing_steps=0,
            validation_steps=0,
            max_train_steps=2,
            text_encoder_lr=1e-1,
        )
    )
    before, after = _weights(base_dir), _weights(out)
    assert before.keys() == after.keys(), "LoRA must be fused away: the saved UNet is a plain UNet"
    emb = "text_encoder.embeddings.token_embedding.weight"
    assert torch.equal(before[emb][:TD2_VOCAB], after[emb][:TD2_VOCAB]), "TD2's rows must not move"
    assert not torch.equal(before[emb][TD2_VOCAB:], after[emb][TD2_VOCAB:]), "Hangul rows should learn"
    others = [k for k in before if k.startswith("text_encoder.") and k != emb]
    assert all(torch.equal(before[k], after[k]) for k in others)
    changed = [k for k in before if k.startswith("unet.") and not torch.equal(before[k], after[k])]
    assert changed and all(any(t in k for t in ("to_k", "to_q", "to_v", "to_out")) for k in changed)
    assert (out / "unet_lora" / "adapter_model.safetensors").is_file()
    load_pipeline(str(out), device="cpu")


def test_cache_is_reused_and_keyed_by_tokenizer(covers, tmp_path, syllable_tokenizer, jamo_tokenizer):
    cfg = ds.DataConfig((covers,), tmp_path, resolution=128, cache_latents=False)
    first = ds.build_cache(cfg, syllable_tokenizer)
    stamp = (first / ds.META_FILE).stat().st_mtime_ns
    assert ds.build_cache(cfg, syllable_tokenizer) == first and (first / ds.META_FILE).stat().st_mtime_ns == stamp
    assert ds.build_cache(cfg, jamo_tokenizer) != first
    data = ds.CoverDataset(first)
    assert len(data) == 16 and data[0]["input_ids"].shape == (77,) and data[0]["pixels"].shape == (3, 128, 128)


def _hand_made_sample(root: Path) -> None:
    """One 256x256 cover whose expected prompt is written out by hand below."""
    from PIL import Image

    from training import mario

    img = Image.new("RGB", (256, 256), "white")
    words = [mario.OcrWord.from_rect("별빛", 20, 40, 200, 80), mario.OcrWord.from_rect("작가", 60, 200, 140, 230)]
    mario.write_sample(root, "s0", mario.encode_jpeg(img), "book cover with a title of 별빛", words)
    mario.write_index(root, [{"id": "s0", "split": "training"}])


def test_cached_ids_match_a_hand_written_td2_prompt(tmp_path, syllable_tokenizer):
    _hand_made_sample(tmp_path / "data")
    folder = ds.build_cache(ds.DataConfig((tmp_path / "data",), tmp_path / "c", resolution=128, cache_latents=False),
                            syllable_tokenizer)
    tok = syllable_tokenizer
    caption = tok("book cover with a title of 별빛").input_ids  # BOS ... EOS
    # boxes scaled 256 -> 128 px, and at 128 px a pixel is a grid cell: (20,40,200,80)/2 and (60,200,140,230)/2
    title = tok.convert_tokens_to_ids(["l10", "t20", "r100", "b40", "[별]", "[빛]"])
    author = tok.convert_tokens_to_ids(["l30", "t100", "r70", "b115", "[작]", "[가]"])
    body = caption + [tok.bos_token_id] + title + [tok.eos_token_id] + author + [tok.eos_token_id, tok.eos_token_id]
    expected = body + [tok.pad_token_id] * (77 - len(body))
    data = ds.CoverDataset(folder)
    assert data.input_ids[0].tolist() == expected

    # TD2's per-load line shuffle: both orders occur across epochs, each a pure function of (seed, epoch, index)
    lines = ds.LinePrompts(data, tok, seed=0)
    swapped = caption + [tok.bos_token_id] + author + [tok.eos_token_id] + title + [tok.eos_token_id, tok.eos_token_id]
    swapped += [tok.pad_token_id] * (77 - len(swapped))
    seen = [lines.ids(0, epoch) for epoch in range(12)]
    assert expected in seen and swapped in seen and all(s in (expected, swapped) for s in seen)
    assert [lines.ids(0, e) for e in range(12)] == seen


def test_sampler_shuffles_everything_resumes_exactly_and_drops_ten_percent():
    s = ds.EpochSampler(n=1000, batch_size=10, seed=7, cfg_dropout=0.1)
    order, drop = s.epoch_order(0)
    assert sorted(order.tolist()) == list(range(1000)) and order.tolist() != list(range(1000))
    assert 0.07 < drop.float().mean().item() < 0.13
    assert not torch.equal(order, s.epoch_order(1)[0])
    it = s.batches(ds.DataPosition())
    full = [next(it) for _ in range(250)]  # two and a half epochs
    resumed = s.batches(ds.DataPosition(epoch=1, batch=37))
    assert [next(resumed) for _ in range(250 - 137)] == full[137:]
    two = [ds.EpochSampler(1000, 10, 7, num_processes=2, process_index=r) for r in range(2)]
    b0, b1 = next(two[0].batches(ds.DataPosition())), next(two[1].batches(ds.DataPosition()))
    assert b0[0] + b1[0] == order[:20].tolist()


def test_collate_replaces_dropped_prompts_with_all_pad(covers, tmp_path, syllable_tokenizer):
    folder = ds.build_cache(ds.DataConfig((covers,), tmp_path, resolution=128, cache_latents=False), syllable_tokenizer)
    data = ds.CoverDataset(folder)
    batch = ds.collate(data, [0, 1, 2], [False, True, False], syllable_tokenizer.pad_token_id)
    assert batch["input_ids"][1].tolist() == [syllable_tokenizer.pad_token_id] * 77
    assert batch["input_ids"][0].tolist() == data.input_ids[0].tolist()


class _ByteTokenizer:
    """A stand-in Korean tokenizer: UTF-8 bytes as ids."""

    def __call__(self, text, add_special_tokens=False):
        return type("Enc", (), {"input_ids": list(text.encode("utf-8"))})()


def test_ko_clip_init_sets_fresh_hangul_rows_from_the_korean_model(syllable_tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    from training.extend import new_rows_are_fresh, prepare_text_encoder

    def te(vocab):
        torch.manual_seed(0)
        return CLIPTextModel(
            CLIPTextConfig(
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=1,
                num_attention_heads=4,
                vocab_size=vocab,
                max_position_embeddings=77,
            )
        )

    td2 = te(TD2_VOCAB)  # what TD2 ships: no Hangul rows yet
    old = td2.get_input_embeddings().weight[:TD2_VOCAB].clone()
    ko_model = te(256)
    n = prepare_text_encoder(td2, syllable_tokenizer, "syllable", "ko-clip", ko_clip=(_ByteTokenizer(), ko_model))
    w = td2.get_input_embeddings().weight
    assert n == len(syllable_tokenizer) - TD2_VOCAB and w.shape[0] == len(syllable_tokenizer)
    assert torch.equal(w[:TD2_VOCAB], old)
    rows = w[TD2_VOCAB:]
    assert not new_rows_are_fresh(td2, syllable_tokenizer)
    assert torch.allclose(rows.mean(0), old.mean(0), atol=1e-3) and torch.allclose(rows.std(0), old.std(0), rtol=1e-2)
    # '가' and '각' share their first two UTF-8 bytes, '가' and '힣' none: the Korean model's geometry survives
    ids = syllable_tokenizer.convert_tokens_to_ids(["[가]", "[각]", "[힣]"])
    ga, gak, hih = w[ids[0]], w[ids[1]], w[ids[2]]
    assert torch.dist(ga, gak) < torch.dist(ga, hih)
    # trained rows are kept: a second call does not re-initialise
    before = w.clone()
    prepare_text_encoder(td2, syllable_tokenizer, "syllable", "ko-clip", ko_clip=(_ByteTokenizer(), ko_model))
    assert torch.equal(before, td2.get_input_embeddings().weight)


def test_model_card_names_hub_ids_only(tmp_path):
    from training.publish import is_hub_id, model_card

    (tmp_path / "kordiff_training.json").write_text(json.dumps({"config": {"pretrained_model": "td2"}}))
    card = model_card(tmp_path, "me/x")
    assert "base_model:\n- JingyeChen22/textdiffuser2-full-ft\n- " in card
    assert is_hub_id("someone/kordiff-ko") and not is_hub_id(str(tmp_path)) and not is_hub_id("./a/b")


def test_config_json_and_flags(tmp_path):
    from training.train import TrainConfig, config_from_args

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"train_data_dir": ["a", "b"], "lora_rank": 8, "use_ema": True}))
    cfg = config_from_args(["--config", str(cfg_file), "--lora-rank", "16", "--no-use-ema", "--learning-rate", "2e-5"])
    assert cfg == TrainConfig(train_data_dir=("a", "b"), lora_rank=16, use_ema=False, learning_rate=2e-5)
    shipped = Path(__file__).resolve().parent.parent / "training" / "configs" / "train_default.json"
    assert TrainConfig.from_json(shipped).pretrained_model == "td2"
    with pytest.raises(ValueError, match="unknown keys"):
        cfg_file.write_text(json.dumps({"learning_rat": 1}))
        TrainConfig.from_json(cfg_file)


def test_every_flag_is_kebab_case_with_help_and_choices():
    from training.train import build_parser

    actions = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    shown = [a for a in actions if a.help != "==SUPPRESS=="]
    assert all(o.startswith("--") and "_" not in o for a in shown for o in a.option_strings)
    assert all(a.help and not a.help.startswith("(default") for a in shown), "a flag without a description"
    choices = {a.dest: a.choices for a in shown}
    assert choices["scheme"] == ["syllable", "jamo"] and choices["init"] == ["mean", "ko-clip"]
    assert choices["mixed_precision"] == ["no", "fp16", "bf16"] and "cosine" in choices["lr_scheduler"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from training.publish import main as publish_main
    from training.train import main as train_main

    assert train_main(["--output-dir", str(tmp_path)]) == 2
    assert "--train-data-dir" in capsys.readouterr().err
    assert (
        train_main(
            [
                "--train-data-dir",
                str(tmp_path / "none"),
                "--output-dir",
                str(tmp_path / "o"),
                "--pretrained-model",
                "tiny-random",
                "--report-to",
                "",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert publish_main(["--pipeline", str(tmp_path), "--repo-id", "a/b", "--dry-run"]) == 2


def test_step_functions_work_from_a_script(base_dir, covers, tmp_path):
    """What a study script uses: build_models, build_data, batch_stream (resumable), diffusion_loss."""
    from training.train import batch_stream, build_data, build_models, diffusion_loss

    cfg = _cfg(base_dir, covers, tmp_path / "o", tmp_path / "cache")
    models = build_models(cfg)
    data = build_data(cfg, models)
    pos = ds.DataPosition()
    stream = batch_stream(data, pos)
    first = [next(stream) for _ in range(10)]  # 8 batches an epoch: crosses into epoch 1
    assert (pos.epoch, pos.batch) == (1, 2)
    again = batch_stream(data, ds.DataPosition(0, 7))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first[7:], [next(again) for _ in range(3)]) for k in a)
    loss = diffusion_loss(first[0], models.vae, models.unet, models.text_encoder, models.noise_scheduler, "cpu",
                          torch.float32)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_validation_layouts_are_planned_for_square_training_images():
    """Training images are square and grid cells are per axis: a portrait plan would squash the title's box."""
    from kordiff.planner import HeuristicConfig, HeuristicPlanner
    from training.train import validation_layout

    square = HeuristicPlanner(seed=0, config=HeuristicConfig(shape="square")).plan("별빛의 속삭임").layout
    assert validation_layout("별빛의 속삭임", 512) == square
    assert square != HeuristicPlanner(seed=0, config=HeuristicConfig(shape="portrait")).plan("별빛의 속삭임").layout


@pytest.mark.parametrize("kind", ["DEEPSPEED", "FSDP"])
def test_untested_distributed_types_are_refused(monkeypatch, tmp_path, kind):
    import types

    import accelerate

    from training.train import TrainConfig, make_accelerator

    class Fake:
        def __init__(self, **kwargs):
            self.distributed_type = types.SimpleNamespace(name=kind)

    monkeypatch.setattr(accelerate, "Accelerator", Fake)
    with pytest.raises(ValueError, match=f"{kind} has never been tested"):
        make_accelerator(TrainConfig(output_dir=str(tmp_path)))
