"""bench.hangul_study: the held-out split holds, the scorers work on real renders, and --quick runs every arm."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from bench import hangul_study as hs


def test_held_out_syllables_never_reach_training_titles():
    train, held = hs.split_syllables(0, 0.2)
    assert len(train) == 1880 and len(held) == 470 and not set(train) & set(held)
    assert hs.split_syllables(0, 0.2) == (train, held) and hs.split_syllables(1, 0.2)[1] != held
    titles = hs.train_titles(2000, train, 4, 0)
    assert not set("".join(titles)) & set(held) and all(2 <= len(t) <= 4 for t in titles)
    sets = hs.eval_titles(16, train, held, 4, 0, exclude=set(titles))
    assert all(set(t) <= set(train) for t in sets["seen"])
    assert all(set(t) & set(held) for t in sets["unseen"])
    assert sets["benchmark"] and all(len(t) <= 4 for t in sets["benchmark"])


def test_compact_universe_is_jamo_closed_and_its_held_out_syllables_reuse_trained_jamo():
    from kordiff.tokens import char_tokens

    syl = hs.universe_syllables("compact")
    assert len(syl) == 297 and set(syl) <= set(hs.common_syllables()) and "강" in syl and "닭" not in syl
    train, held = hs.split_syllables(0, 0.2, "compact")
    assert len(held) == 59 and sorted(train + held) == syl
    trained_jamo = {j for c in train for j in char_tokens(c, "jamo")}
    assert all(set(char_tokens(c, "jamo")) <= trained_jamo for c in held)  # unseen = new combinations only
    titles = hs.train_titles(500, train, 4, 0)
    assert set("".join(titles)) <= set(train)
    sets = hs.eval_titles(16, train, held, 4, 0, exclude=set(titles))
    assert all(set(t) <= set(syl) for t in sets["seen"] + sets["unseen"])
    with pytest.raises(ValueError, match="universe"):
        hs.StudyConfig(universe="everything")


def test_template_scorer_reads_real_renders_and_not_noise():
    bank = hs.TemplateBank(16)  # every target font and size, as the study
    titles = ["별빛", "하늘바다", "고양이"]
    real = [hs.render_target(t, 4, 16, random.Random(k), np.random.default_rng(k)) for k, t in enumerate(titles)]
    noise = [hs.to_image(torch.rand(3, 16, 64) * 2 - 1) for _ in titles]
    assert hs.score_images(real, titles, bank)["template_top1"] >= 0.9
    assert hs.score_images(noise, titles, bank)["template_top1"] == 0.0
    shifted = [Image.fromarray(np.roll(np.asarray(im), (1, 2), axis=(0, 1))) for im in real]
    assert hs.score_images(shifted, titles, bank)["template_top1"] >= 0.9  # a pixel or two off is still read
    exact = hs.TemplateBank(16, shift=0)
    assert hs.score_images(shifted, titles, exact)["template_top1"] < hs.score_images(shifted, titles, bank)[
        "template_top1"]


@pytest.mark.slow
def test_quick_study_trains_samples_and_writes_every_arm(tmp_path):
    hs.run(hs.StudyConfig(out=str(tmp_path), quick=True))
    res = json.loads((tmp_path / "hangul_study.json").read_text(encoding="utf-8"))
    assert res["complete"] and list(res["arms"]) == list(hs.ARMS)
    for arm, r in res["arms"].items():
        assert r["steps"] == hs.SCALES["quick"].steps and r["curve"] and r["params_unet"] > 0
        assert set(r["sets"]) == {"seen", "unseen", "benchmark"}
        for scores in r["sets"].values():
            assert {"template_top1", "ocr_sentence_acc", "ocr_ned", "ocr_char_acc"} <= set(scores)
        assert any((tmp_path / "samples" / arm.replace("+", "_")).glob("seen-*.png"))
    assert set(res["ceiling"]) == {"seen", "unseen", "benchmark"} and "seen" in res["floor"]
    assert (tmp_path / "hangul_study.png").stat().st_size > 0
    again = hs.rescore(tmp_path, ocr=False)  # the saved samples read again (with today's scorer)
    assert set(again["arms"]) == set(hs.ARMS)
    assert again["rescored"]["titles_per_set"]["seen"] == len(res["title_sets"]["seen"])
    assert all(r["sets_exact_position"] == res["arms"][a]["sets"] for a, r in again["arms"].items())
    assert set(again["ceiling"]) == {"seen", "unseen", "benchmark"} and "ocr_ned" not in again["ceiling"]["seen"]


@pytest.mark.slow
def test_arms_run_side_by_side_merge_into_one_study(tmp_path):
    # --jobs 2: one process per arm here (1 thread each), then merged into --out, as the README's full run
    m = tmp_path / "m"
    assert hs.main(["--out", str(m), "--quick", "--no-ocr", "--jobs", "2", "--arms", "syllable", "glyph+jamo"]) == 0
    res = json.loads((m / "hangul_study.json").read_text(encoding="utf-8"))
    assert list(res["arms"]) == ["syllable", "glyph+jamo"] and res["complete"] and len(res["merged_from"]) == 2
    assert res["sheet"]["rows"] == ["ground truth", "glyph input", "untrained", "syllable", "glyph+jamo"]
    assert any((m / "samples" / "glyph_jamo").glob("seen-*.png"))
    a, b = m / "part-0", m / "part-1"
    assert hs.main(["--merge", str(a), str(b), "--out", str(tmp_path / "again")]) == 0  # by hand, the same
    other = json.loads((b / "hangul_study.json").read_text(encoding="utf-8"))
    other["config"]["seed"] = 1  # a study of another split must not be merged into this one
    (b / "hangul_study.json").write_text(json.dumps(other), encoding="utf-8")
    assert hs.main(["--merge", str(a), str(b), "--out", str(tmp_path / "bad")]) == 2
