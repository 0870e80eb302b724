"""Shared tiny components: the real CLIP BPE tokenizer (offline, from assets/) and tiny random pipelines."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Hypothesis keeps its example database in ./.hypothesis by default: keep it out of the repository.
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "kordiff-hypothesis"))


@pytest.fixture(scope="session")
def clip_tokenizer():
    from kordiff.tokens import clip_tokenizer_from_assets

    return clip_tokenizer_from_assets()


def _extended(scheme):
    from kordiff.tokens import clip_tokenizer_from_assets, extend_tokenizer

    tok = clip_tokenizer_from_assets()
    extend_tokenizer(tok, scheme)
    return tok


@pytest.fixture(scope="session")
def syllable_tokenizer():
    return _extended("syllable")


@pytest.fixture(scope="session")
def jamo_tokenizer():
    return _extended("jamo")


@pytest.fixture(scope="session")
def tiny_pipe():
    from kordiff.tiny import tiny_pipeline

    return tiny_pipeline(scheme="syllable", seed=0)


# --------------------------------------------------------------------------------------------- planner (helper)

_TINY_LLAMA_CORPUS = [
    "Given a prompt that will be used to generate an image, plan the layout of visual text for the image.",
    "A chat between a curious human and an artificial intelligence assistant.",
    "### Human: Got any creative ideas for a birthday? ### Assistant: Of course!",
    "book cover with a title of 별빛의 속삭임",
    "별빛의 속삭임 13,3,113,29",
    "마음의 바다 5,52,121,80",
    "바람이 머무는 곳 13,1,115,31",
    "작은 행복의 발견 23,2,103,28",
    "끝없는 여정 30,52,118,73",
    "The Sea of My Mind 15,3,107,21",
    "Keywords: ['달빛 아래 춤을'] 2,3,125,31",
]


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A tiny random LlamaForCausalLM + a SentencePiece tokenizer trained here, saved as a from_pretrained dir."""
    sentencepiece = pytest.importorskip("sentencepiece")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny_llama")
    corpus = root / "corpus.txt"
    from kordiff.planner import build_planner_prompt

    template = build_planner_prompt("book cover with a title of 별빛의 속삭임", ["별빛의 속삭임"]).splitlines()
    lines = (_TINY_LLAMA_CORPUS + template) * 30 + [
        f"{i},{(i * 7) % 128},{(i * 3) % 128},{(i * 11) % 128}" for i in range(200)
    ]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(root / "spm"),
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    model_dir = root / "model"
    model_dir.mkdir()
    # transformers 5 converts a Llama `tokenizer.model` (SentencePiece) itself; it needs sentencepiece + protobuf.
    (model_dir / "tokenizer.model").write_bytes((root / "spm.model").read_bytes())
    (model_dir / "tokenizer_config.json").write_text('{"tokenizer_class": "LlamaTokenizer"}', encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run ~5x faster on one thread than on two contended ones (a shared 2-core box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fresh_accelerate(one_torch_thread):
    """accelerate's state is a per-process singleton: reset it after each training test."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
