"""kordiff.service: the app's requests without a UI (no gradio, no model: injected cover makers)."""

import pytest
from PIL import Image

from kordiff import service
from kordiff.covers import Cover
from kordiff.modes import ModeError
from kordiff.plan_result import PlannerUnavailableError

TABLE = [["마음의 바다", 8, 10, 120, 40]]


def request(**changes):
    args = dict(title="마음의 바다", description="", table=TABLE, num_images=2, steps=20, guidance=7.5,
                scheduler="ddpm", seed=5, randomise=False, mode="typeset", gpu=False)
    return service.read_request(**{**args, **changes})


def test_read_request_checks_every_input_with_a_message_for_users():
    req = request()
    assert (req.layout.texts, req.decision.mode, req.num_images, req.seed) == (["마음의 바다"], "typeset", 2, 5)
    with pytest.raises(ValueError, match="Unknown scheduler 'plms'; choose one of ddpm"):
        request(scheduler="plms")
    with pytest.raises(ModeError, match="there are none"):
        request(table=[])
    with pytest.raises(ValueError, match="3 images x 20 steps = 60 denoising steps"):
        request(mode="hybrid", num_images=3)
    assert 0 <= request(randomise=True, seed="not a number").seed <= service.MAX_SEED


def test_cover_steps_rank_covers_as_they_arrive_and_decode_the_prompt_last():
    made = []

    def make_cover(mode, model, title, description, layout, steps, guidance, scheduler, seed):
        made.append((mode, model, steps, seed))
        return [Cover(Image.new("RGB", (4, 6)), seed, mode)]

    steps = list(service.cover_steps(request(), "tiny-random", make_cover=make_cover, diffuse=None))
    assert made == [("typeset", "tiny-random", 20, 5), ("typeset", "tiny-random", 20, 6)]
    captions = [[c for _, c in s.gallery] for s in steps]
    assert captions == [["seed 5 · typeset"], ["seed 5 · typeset", "seed 6 · typeset"]]
    assert steps[0].prompt is None and "마음의 바다" in steps[1].prompt
    assert steps[1].details == "- seed 5 · typeset\n- seed 6 · typeset"


def test_plan_layout_falls_back_to_the_heuristic_planner(monkeypatch):
    def unavailable(*a):
        raise PlannerUnavailableError("no weights")

    monkeypatch.setattr(service, "plan_m1", unavailable)
    text, decision = service.read_plan("마음의 바다", "", "김하늘", "", "m1", "typeset")
    out = service.plan_layout(text, "m1", decision, "tiny-random", "no-m1", m1_notice="slow here")
    assert out.layout.texts == ["마음의 바다", "김하늘"] and out.raw.startswith("# planner: heuristic\n")
    assert out.notices[:2] == ("slow here", "M1 planner unavailable (no weights); used the heuristic planner.")


def test_failure_notices_are_one_line_with_a_hint_for_memory():
    assert service.failure_notice(RuntimeError("CUDA out of memory\ntrace")) == (
        "**Generation failed:** CUDA out of memory. Try fewer images or steps.")
    assert service.failure_notice(KeyError()) == "**Generation failed:** KeyError."


def test_preload_logs_a_model_that_cannot_load_and_goes_on(monkeypatch, caplog):
    from kordiff import shared
    from kordiff.hub import ModelUnavailableError

    def missing(model):
        raise ModelUnavailableError(f"No weights for {model}.\nDownload them with ...")

    monkeypatch.setattr(shared, "pipeline_for", missing)
    shared.preload("td2", "m1-repo")
    assert [r.getMessage() for r in caplog.records] == ["No weights for td2."]
