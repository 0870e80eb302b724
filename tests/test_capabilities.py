"""Start-up capability probes (faked) -> defaults and one status line; the shared mode policy; Hub error messages."""

import subprocess
import sys

import pytest

from kordiff import hub
from kordiff.capabilities import detect_capabilities, weights_cached
from kordiff.hub import M1_REPO, SD15_REPO, TD2_REPO, ModelUnavailableError, load_component, unavailable_message
from kordiff.modes import MODES, ModeError, decide


def caps(gpu, cached=(), online=False, model="td2"):
    return detect_capabilities(model, gpu=lambda: gpu, cached=lambda repo: repo in cached, reachable=lambda: online)


def test_gpu_and_cached_weights_default_to_m1_and_hybrid_with_no_status():
    c = caps(True, cached={TD2_REPO, SD15_REPO, M1_REPO})
    assert (c.default_mode, c.default_planner, c.status) == ("hybrid", "m1", "")


def test_gpu_and_reachable_hub_default_to_m1_and_hybrid(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    c = caps(True, online=True)
    assert (c.default_mode, c.default_planner, c.hub_reachable) == ("hybrid", "m1", True)


def test_no_gpu_defaults_to_typeset_and_heuristic_and_never_probes_the_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def probe():
        raise AssertionError("the Hub was probed on a CPU machine")

    c = detect_capabilities("td2", gpu=lambda: False, cached=lambda repo: False, reachable=probe)
    assert (c.default_mode, c.default_planner, c.hub_reachable) == ("typeset", "heuristic", None)
    assert "no GPU" in c.status and "27 GB" in c.status
    assert "hf download " + TD2_REPO in c.status and "hf download " + SD15_REPO in c.status
    assert "hf download " + M1_REPO in c.status and "13.5 GB" in c.status and "huggingface-cli" not in c.status
    assert "\n" not in c.status
    assert c.planner_notice("m1").startswith("M1 planner requested without a GPU") and not c.planner_notice("heuristic")


def test_offline_gpu_without_weights_says_so_and_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    c = caps(True, cached={M1_REPO})
    assert (c.default_mode, c.default_planner) == ("typeset", "m1")
    assert "HF_HUB_OFFLINE=1" in c.status and "hf download " + TD2_REPO in c.status
    assert "hf download " + M1_REPO not in c.status  # M1 is cached: not part of the fix


def test_tiny_random_runs_on_a_cpu():
    c = caps(False, model="tiny-random")
    assert c.default_mode == "hybrid" and c.default_planner == "heuristic"


def test_weights_cached_reads_the_hub_cache_layout(tmp_path):
    snap = tmp_path / "models--JingyeChen22--textdiffuser2_layout_planner" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (tmp_path / "models--JingyeChen22--textdiffuser2_layout_planner" / "refs").mkdir()
    (tmp_path / "models--JingyeChen22--textdiffuser2_layout_planner" / "refs" / "main").write_text("abc")
    for name in ("config.json", "tokenizer.model"):
        (snap / name).write_text("{}")
    assert not weights_cached(M1_REPO, cache_dir=str(tmp_path))  # no weight file yet
    (snap / "pytorch_model-00001-of-00002.bin").write_bytes(b"")
    assert weights_cached(M1_REPO, cache_dir=str(tmp_path))
    assert not weights_cached(TD2_REPO, cache_dir=str(tmp_path))


def test_probing_imports_no_torch():
    code = ("import sys; from kordiff.capabilities import detect_capabilities; detect_capabilities('td2'); "
            "import kordiff.modes, kordiff.hub; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})


# --- modes -------------------------------------------------------------------------------------------------------


def test_mode_policy():
    assert MODES == ("diffusion", "hybrid", "typeset")
    d = decide("typeset", 2)
    assert (d.mode, d.needs_pipeline, d.raw_pipeline, d.prompt_notices_apply) == ("typeset", False, False, False)
    d = decide("hybrid", 1)
    assert (d.mode, d.needs_pipeline, d.raw_pipeline, d.prompt_notices_apply) == ("hybrid", True, False, True)
    d = decide("hybrid", 0)
    assert (d.mode, d.raw_pipeline) == ("diffusion", True) and "falls back" not in d.notices[0]
    assert "'hybrid' mode needs text boxes" in d.notices[0]
    assert decide("diffusion", 0).raw_pipeline and not decide("diffusion", 0).notices
    with pytest.raises(ModeError, match="'typeset' mode sets the text of the boxes"):
        decide("typeset", 0)
    with pytest.raises(ModeError, match="Unknown mode 'oil'"):
        decide("oil", 3)


def test_covers_and_evaluate_use_the_one_definition():
    import kordiff
    from kordiff import covers, evaluate, modes

    assert covers.MODES is modes.MODES and evaluate.MODES is modes.MODES and kordiff.MODES is modes.MODES


# --- Hub errors ----------------------------------------------------------------------------------------------------


def test_messages_name_the_real_cause():
    offline = unavailable_message("TD2 UNet", TD2_REPO, OSError("no file named config.json"),
                                  needed=(TD2_REPO, SD15_REPO), online=False)
    assert "unreachable" in offline or "HF_HUB_OFFLINE" in offline
    assert f"hf download {TD2_REPO} unet/ text_encoder/" in offline and f"hf download {SD15_REPO}" in offline
    assert "config.json" not in offline  # the symptom is replaced by the cause
    oom = unavailable_message("TD2 UNet", TD2_REPO, MemoryError(), online=True)
    assert oom.startswith("Not enough memory to load the TD2 UNet") and "typeset" in oom

    class RepositoryNotFoundError(OSError):
        pass

    missing = unavailable_message("kordiff pipeline", "someone/nope", RepositoryNotFoundError("404"), online=True)
    assert "the Hub has no repo 'someone/nope'" in missing


def test_load_component_is_offline_aware_and_raises_one_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    seen = {}

    def load(repo, **kwargs):
        seen.update(kwargs)
        raise OSError("does not appear to have a file named config.json")

    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE=1 is set") as e:
        load_component("SD1.5 VAE", SD15_REPO, load, subfolder="vae", needed=(TD2_REPO, SD15_REPO))
    assert seen == {"subfolder": "vae", "local_files_only": True} and e.value.__suppress_context__
    hub.hub_reachable.cache_clear()


def test_gpu_probe_follows_the_environment(monkeypatch):
    from kordiff import capabilities

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    assert capabilities.gpu_present() is False  # hidden GPUs stay hidden, as torch would see them
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert capabilities.gpu_present() is True  # ZeroGPU attaches one per call
    monkeypatch.delenv("SPACES_ZERO_GPU")
    monkeypatch.setattr(capabilities.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(capabilities.os.path, "exists", lambda path: False)
    monkeypatch.setattr(capabilities.shutil, "which", lambda name: None)
    assert capabilities.gpu_present() is False
