"""Shared tiny components: the real CLIP BPE tokenizer (offline, from assets/) and tiny random pipelines."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
