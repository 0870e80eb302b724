"""Exact ids: every expected list below is written out by hand from TD2's construction order:
coordinate `{side}{i}` -> 49408 + 4*i + 'ltrb'.index(side); `[c]` -> 51488 + TD2_ALPHABET.index(c);
Hangul `[syllable]` -> 51583 + (ord(s) - 0xAC00); jamo `[j]` -> 51583 + HANGUL_JAMO.index(j)."""

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from kordiff.layout import Box, Layout
from kordiff.tokens import (
    HANGUL_JAMO,
    HANGUL_SYLLABLES,
    TD2_ALPHABET,
    book_caption,
    char_tokens,
    clip_tokenizer_from_assets,
    coordinate_tokens,
    decode_prompt,
    detect_scheme,
    encode_prompt,
    encode_prompt_report,
    extend_text_encoder,
    extend_tokenizer,
    uncond_prompt,
    unsupported_chars,
)

PAD = 49407


def padded(ids):
    return ids + [PAD] * (77 - len(ids))


def test_clip_bpe_from_assets_matches_sd15(clip_tokenizer):
    assert len(clip_tokenizer) == 49408
    assert clip_tokenizer("This is a sentence.").input_ids == [49406, 589, 533, 320, 12737, 269, 49407]
    assert clip_tokenizer.pad_token_id == PAD


def test_alphabets():
    assert len(TD2_ALPHABET) == 95
    assert len(HANGUL_SYLLABLES) == 11172 and HANGUL_SYLLABLES[-1] == "힣"  # the seed stopped at 힝
    assert len(HANGUL_JAMO) == 67
    assert coordinate_tokens()[:5] == ["l0", "t0", "r0", "b0", "l1"] and len(coordinate_tokens()) == 2080


def test_extension_order_and_ids(syllable_tokenizer, jamo_tokenizer):
    assert len(syllable_tokenizer) == 49408 + 2080 + 95 + 11172
    assert len(jamo_tokenizer) == 49408 + 2080 + 95 + 67
    for tok in (syllable_tokenizer, jamo_tokenizer):
        assert tok.convert_tokens_to_ids(["l0", "b519", "[0]", "[ ]"]) == [49408, 51487, 51488, 51582]
    assert syllable_tokenizer.convert_tokens_to_ids(["[가]", "[힣]"]) == [51583, 62754]
    assert jamo_tokenizer.convert_tokens_to_ids(["[ᄀ]", "[ᅡ]", "[ᆨ]", "[ᇂ]"]) == [51583, 51602, 51623, 51649]
    assert detect_scheme(syllable_tokenizer) == "syllable" and detect_scheme(jamo_tokenizer) == "jamo"


def test_extend_tokenizer_is_idempotent_and_refuses_mixing():
    tok = clip_tokenizer_from_assets()
    assert extend_tokenizer(tok, "jamo") == 2080 + 95 + 67
    assert extend_tokenizer(tok, "jamo") == 0
    with pytest.raises(ValueError, match="already carries"):
        extend_tokenizer(tok, "syllable")
    assert detect_scheme(clip_tokenizer_from_assets()) is None


def test_english_layout_ids_are_td2s(syllable_tokenizer):
    layout = Layout((Box("Hi!", 12, 30, 90, 50),))
    ids = encode_prompt(syllable_tokenizer, "a poster of a cat", layout)
    assert ids == padded([49406, 320, 3574, 539, 320, 2368, 49407,  # caption BOS..EOS
                          49406, 49456, 49529, 49770, 49611,  # layout BOS, l12 t30 r90 b50
                          51531, 51506, 51550, 49407,  # [H] [i] [!] EOS
                          49407])  # layout EOS
    assert uncond_prompt(syllable_tokenizer) == [PAD] * 77


def test_korean_layout_ids_syllable_scheme(syllable_tokenizer):
    layout = Layout((Box("달빛", 0, 0, 64, 20), Box("A 1", 5, 100, 60, 120)))
    ids = encode_prompt(syllable_tokenizer, "cover", layout)
    assert ids == padded([49406, 2202, 49407, 49406,
                          49408, 49409, 49666, 49491, 53355, 56282, 49407,  # l0 t0 r64 b20 [달] [빛] EOS
                          49428, 49809, 49650, 49891, 51524, 51582, 51489, 49407,  # l5 t100 r60 b120 [A] [ ] [1] EOS
                          49407])


def test_korean_layout_ids_jamo_scheme(jamo_tokenizer):
    ids = encode_prompt(jamo_tokenizer, "cover", Layout((Box("달빛", 0, 0, 64, 20),)))
    # 달 = ᄃ ᅡ ᆯ, 빛 = ᄇ ᅵ ᆾ
    assert ids == padded([49406, 2202, 49407, 49406, 49408, 49409, 49666, 49491,
                          51586, 51602, 51630, 51590, 51622, 51645, 49407, 49407])


def test_truncation_edge_forty_syllables(syllable_tokenizer):
    title = "가나다라마바사아자차" * 4
    # A short caption leaves room: 3 + 1 + 4 + 40 + 1 + 1 = 50 ids, nothing cut.
    one = encode_prompt_report(syllable_tokenizer, "cover", Layout((Box(title, 0, 0, 128, 30),)))
    assert not one.truncated and one.ids[47] == 51583 + HANGUL_SYLLABLES.index("차") and one.warnings == []
    # A second 40-syllable line does not fit: cut at 77 and reported.
    two = encode_prompt_report(syllable_tokenizer, "cover", Layout((Box(title, 0, 0, 128, 30),
                                                                     Box(title, 0, 40, 128, 70))))
    assert two.truncated and len(two.ids) == 77 and two.cut_boxes == [title]
    assert two.ids[49:53] == [49408, 49569, 49922, 49691]  # second line's l0 t40 r128 b70 made it
    assert two.ids[-1] == 51583 + HANGUL_SYLLABLES.index(title[23])  # 77 - 53 = 24 syllables of it kept
    assert two.cut_kept == [title[:24]]
    # The seed's caption spells the title in byte-level BPE: 40 syllables take 72 ids, leaving no room for a box.
    full = encode_prompt_report(syllable_tokenizer, book_caption(title), Layout((Box(title, 0, 0, 128, 30),)))
    assert full.truncated and full.dropped_boxes == [title] and full.caption_length == 72
    assert any("left out" in w for w in full.warnings)
    # fit_layout (kordiff's pipeline and training) shortens the caption instead: all 40 syllables make it.
    fit = encode_prompt_report(syllable_tokenizer, book_caption(title), Layout((Box(title, 0, 0, 128, 30),)),
                               fit_layout=True)
    assert fit.caption_shortened_from == 72 and fit.caption_length == 30 and not fit.truncated
    assert fit.ids[:30] == full.ids[:29] + [49407]  # caption cut, its EOS kept
    assert fit.ids[30:35] == [49406, 49408, 49409, 49922, 49531]  # BOS l0 t0 r128 b30
    assert fit.ids[35:75] == [51583 + HANGUL_SYLLABLES.index(c) for c in title] and fit.ids[75:] == [49407, 49407]
    assert any("caption shortened from 72 to 30" in w for w in fit.warnings)


def test_fit_layout_changes_nothing_when_everything_fits(syllable_tokenizer):
    layout = Layout((Box("별빛의 속삭임", 10, 12, 118, 40), Box("김하늘", 40, 110, 90, 120)))
    caption = book_caption("별빛의 속삭임", "a night sky full of stars")
    exact = encode_prompt_report(syllable_tokenizer, caption, layout)
    fit = encode_prompt_report(syllable_tokenizer, caption, layout, fit_layout=True)
    assert fit == exact and fit.caption_shortened_from == 0


def test_unsupported_characters_are_reported_not_silent(syllable_tokenizer):
    layout = Layout((Box("月光 아래 🌙", 0, 0, 100, 20),))
    rep = encode_prompt_report(syllable_tokenizer, "cover", layout)
    assert rep.unsupported == ["月", "光", "🌙"]
    assert any("月" in w for w in rep.warnings)
    assert unsupported_chars("달빛", "syllable") == [] and unsupported_chars("달빛", None) == ["달", "빛"]
    expected = ['["]', "[달]", '["]', "[ ]", "[-]", "[ ]", "[1]", "[.]", "[.]", "[.]"]
    assert char_tokens("“달” — 1…", "syllable") == expected


def test_decode_prompt_is_readable(syllable_tokenizer):
    ids = encode_prompt(syllable_tokenizer, "cover", Layout((Box("달빛", 0, 0, 64, 20),)))
    text = decode_prompt(syllable_tokenizer, ids)
    assert "[달][빛]" in text and "l0t0r64b20" in text.replace(" ", "") and text.count("<|endoftext|>") <= 5
    ids = encode_prompt(syllable_tokenizer, "A Cat", Layout((Box("Tt", 0, 0, 9, 9),)))
    upper = decode_prompt(syllable_tokenizer, ids)
    assert upper == "<|startoftext|>a cat<|endoftext|><|startoftext|>l0t0r9b9[T][t]<|endoftext|>"


def test_extend_text_encoder_keeps_td2_rows_bit_identical(syllable_tokenizer):
    torch.manual_seed(0)
    td2_vocab = 49408 + 2080 + 95
    te = CLIPTextModel(CLIPTextConfig(hidden_size=16, intermediate_size=20, num_hidden_layers=1,
                                      num_attention_heads=2, vocab_size=td2_vocab, max_position_embeddings=77))
    before = te.get_input_embeddings().weight.detach().clone()
    assert extend_text_encoder(te, syllable_tokenizer) == 11172
    after = te.get_input_embeddings().weight.detach()
    assert after.shape == (len(syllable_tokenizer), 16)
    assert torch.equal(after[:td2_vocab], before)
    assert torch.allclose(after[td2_vocab:], before.mean(0).expand(11172, -1))
    assert extend_text_encoder(te, syllable_tokenizer) == 0
    rows = torch.randn(67, 16)
    te2 = CLIPTextModel(te.config.__class__(**{**te.config.to_dict(), "vocab_size": td2_vocab}))
    from kordiff.tokens import clip_tokenizer_from_assets
    jt = clip_tokenizer_from_assets()
    extend_tokenizer(jt, "jamo")
    extend_text_encoder(te2, jt, init=rows)
    assert torch.equal(te2.get_input_embeddings().weight[td2_vocab:].detach(), rows)
    with pytest.raises(ValueError):
        extend_text_encoder(CLIPTextModel(te.config.__class__(**{**te.config.to_dict(), "vocab_size": 70000})), jt)
