"""Hangul token rows of the text encoder: which rows are new, and how they start (`mean` or `ko-clip`).

kordiff.tokens.extend_tokenizer puts the Hangul tokens after TD2's 49,408 + 2,080 + 95 tokens, and
extend_text_encoder starts their rows at the mean of the old rows. `ko-clip` instead starts each row from
the Korean CLIP (Bingsu/clip-vit-large-patch14-ko) input embedding of that character, which is what the
seed meant to do: its merged Korean BPE entries never matched real Korean input (REFERENCE.md section 3).
The Korean CLIP's embedding space has other statistics than TD2's, so the rows are standardised per
dimension and mapped onto the mean and spread of TD2's own rows: relations between syllables are kept, the
scale is TD2's.
"""

from __future__ import annotations

import logging

import torch

from kordiff.loading import TD2_VOCAB, load_component
from kordiff.tokens import detect_scheme, extend_text_encoder, extend_tokenizer

logger = logging.getLogger(__name__)

KO_CLIP = "Bingsu/clip-vit-large-patch14-ko"
INITS = ("mean", "ko-clip")


def new_token_ids(tokenizer) -> range:
    """Ids of the Hangul tokens kordiff adds after TD2's vocabulary."""
    return range(TD2_VOCAB, len(tokenizer))


def new_rows_are_fresh(text_encoder, tokenizer) -> bool:
    """True when the Hangul rows are still all identical (just mean-initialised, never trained)."""
    ids = new_token_ids(tokenizer)
    if len(ids) == 0:
        return False
    rows = text_encoder.get_input_embeddings().weight[ids.start : ids.stop]
    return bool(torch.equal(rows, rows[:1].expand_as(rows)))


def load_ko_clip(model_id: str = KO_CLIP):
    """(tokenizer, text model) of the Korean CLIP, with kordiff's clear error when it cannot be loaded."""
    from transformers import AutoTokenizer, CLIPTextModel

    tok = load_component("Korean CLIP tokenizer", model_id, AutoTokenizer.from_pretrained)
    model = load_component("Korean CLIP text model", model_id, CLIPTextModel.from_pretrained)
    return tok, model


@torch.no_grad()
def ko_clip_rows(tokens: list[str], reference: torch.Tensor, ko_tokenizer, ko_text_model) -> torch.Tensor:
    """Rows for `[c]` tokens from the Korean CLIP: mean input embedding of c's sub-tokens, moved to TD2's scale."""
    emb = ko_text_model.get_input_embeddings().weight.float()
    if emb.shape[1] != reference.shape[1]:
        raise ValueError(f"Korean CLIP width {emb.shape[1]} != text encoder width {reference.shape[1]}")
    rows = []
    for token in tokens:
        ch = token[1:-1] if token.startswith("[") and token.endswith("]") else token
        ids = ko_tokenizer(ch, add_special_tokens=False).input_ids
        ids = [i for i in ids if 0 <= i < emb.shape[0]]
        rows.append(emb[ids].mean(0) if ids else emb.mean(0))
    ko = torch.stack(rows)
    ko = (ko - ko.mean(0)) / ko.std(0).clamp_min(1e-6)
    ref = reference.float()
    return ko * ref.std(0) + ref.mean(0)


def prepare_text_encoder(text_encoder, tokenizer, scheme: str = "syllable", init: str = "mean", ko_clip=None) -> int:
    """Extend tokenizer and text encoder (idempotent); rows never trained are (re)initialised with `init`.

    `ko_clip` = (tokenizer, text model) to use instead of loading KO_CLIP (tests pass a tiny one).
    Returns how many rows were initialised.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    extend_tokenizer(tokenizer, scheme)
    if detect_scheme(tokenizer) != scheme:
        raise ValueError(f"tokenizer carries the {detect_scheme(tokenizer)!r} scheme, not {scheme!r}")
    grown = extend_text_encoder(text_encoder, tokenizer, init="mean")
    if init == "mean" or not new_rows_are_fresh(text_encoder, tokenizer):
        if init == "ko-clip":
            logger.info("Hangul rows are already trained: keeping them (ko-clip init only applies to fresh rows)")
        return grown
    ids = new_token_ids(tokenizer)
    ko_tok, ko_model = ko_clip if ko_clip is not None else load_ko_clip()
    weight = text_encoder.get_input_embeddings().weight
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    rows = ko_clip_rows(tokens, weight[:TD2_VOCAB].detach(), ko_tok, ko_model)
    with torch.no_grad():
        weight[ids.start : ids.stop] = rows.to(weight)
    logger.info("initialised %d Hangul rows from the Korean CLIP", len(ids))
    return len(ids)


def mask_old_rows(text_encoder, tokenizer) -> torch.utils.hooks.RemovableHandle:
    """Make only the Hangul rows of the token embedding learn: gradients of TD2's rows are zeroed."""
    weight = text_encoder.get_input_embeddings().weight
    weight.requires_grad_(True)
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    mask[new_token_ids(tokenizer).start :] = 1
    return weight.register_hook(lambda g: g * mask.to(g))
