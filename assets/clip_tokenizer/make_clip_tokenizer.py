"""Rebuild vocab.json + merges.txt (the SD1.5 / OpenAI CLIP BPE) from the file in the open_clip_torch wheel.

Run once, offline, with the wheel taken by `pip download --no-deps open_clip_torch==3.3.0 -d /tmp/oc`:

    python assets/clip_tokenizer/make_clip_tokenizer.py /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl

The BPE file is MIT-licensed (OpenAI CLIP). open_clip_torch is not a dependency: it pulls torchvision.
"""

import gzip
import json
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of GPT-2/CLIP byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith("bpe_simple_vocab_16e6.txt.gz"))
        lines = gzip.decompress(zf.read(name)).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    vocab_json = json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False)
    (HERE / "vocab.json").write_text(vocab_json, encoding="utf-8")
    merges_txt = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (HERE / "merges.txt").write_text(merges_txt, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
