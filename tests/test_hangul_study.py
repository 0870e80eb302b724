"""bench.hangul_study: the held-out split holds, the scorers work on real renders, and --quick runs every arm."""

import json
import random

import numpy as np
import pytest
import torch

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


def test_template_scorer_reads_real_renders_and_not_noise():
    bank = hs.TemplateBank(16, sizes=(14,))
    titles = ["별빛", "하늘바다", "고양이"]
    real = [hs.render_target(t, 4, 16, random.Random(k), np.random.default_rng(k)) for k, t in enumerate(titles)]
    noise = [hs.to_image(torch.rand(3, 16, 64) * 2 - 1) for _ in titles]
    assert hs.score_images(real, titles, bank)["template_top1"] >= 0.5  # one size of three (full bank: ~0.99)
    assert hs.score_images(noise, titles, bank)["template_top1"] == 0.0


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
