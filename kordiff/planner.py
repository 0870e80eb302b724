"""Layout planners: TD2's M1 prompt, a parser that never crashes on M1's output, a heuristic and the M1 LLM planner.

Every planner returns a `PlanResult` whose layout places every requested text (the title at least): boxes M1
got wrong are repaired or dropped with a warning, and whatever M1 failed to place is placed by
`HeuristicPlanner`, which measures the text in the shipped font and lays it out like a book cover.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastchat.conversation import get_conv_template  # fschat: TD2's own templates; stdlib-only, no torch

from .heuristic import HeuristicConfig, HeuristicPlanner, _role, char_weight, split_title_lines, text_weight
from .hub import M1_CPU_COST, M1_REPO, hub_reachable, is_out_of_memory, looks_local, unavailable_message
from .layout import GRID, Box, Layout
from .plan_result import PLACEMENTS, ROLES, Planner, PlannerUnavailableError, PlanResult, _norm, requested_texts
from .planner_output import DroppedLine, ParseReport, parse_planner_output, parse_planner_output_report
from .tokens import book_caption

logger = logging.getLogger(__name__)

__all__ = [
    "M1_MODEL_ID", "PLACEMENTS", "ROLES", "STOP_STRINGS", "TEMPLATES", "DroppedLine", "HeuristicConfig",
    "HeuristicPlanner", "M1Planner", "ParseReport", "PlanResult", "Planner", "PlannerUnavailableError",
    "book_caption", "build_planner_prompt", "char_weight", "complete_layout", "m1_instruction",
    "parse_planner_output", "parse_planner_output_report", "requested_texts", "split_title_lines", "text_weight",
]

M1_MODEL_ID = M1_REPO
TEMPLATES = ("one_shot", "vicuna_v1.1")


# ------------------------------------------------------------------------------------------------- M1 prompt text

_M1_HEAD = (
    "Given a prompt that will be used to generate an image, plan the layout of visual text for the image. "
    "The size of the image is 128x128. Therefore, all properties of the positions should not exceed 128, "
    "including the coordinates of top, left, right, and bottom. "
)
_M1_WITH_KEYWORDS = "In addition, we also provide all keywords at random order for reference. "
_M1_WITHOUT_KEYWORDS = "All keywords are included in the caption. "
_M1_TAIL = (
    "You dont need to specify the details of font styles. At each line, the format should be keyword left, top, "
    "right, bottom. So let us begin. Prompt: "
)

# Where the assistant's turn ends in each template: generation after it is the model starting a new turn.
STOP_STRINGS = {"one_shot": "###", "vicuna_v1.1": "</s>"}


def m1_instruction(prompt: str, keywords: Sequence[str] | None = None) -> str:
    """TD2's M1 instruction text (the user turn), with or without the keywords sentence."""
    if keywords:
        return f"{_M1_HEAD}{_M1_WITH_KEYWORDS}{_M1_TAIL}{prompt}. Keywords: {str(list(keywords))}"
    return f"{_M1_HEAD}{_M1_WITHOUT_KEYWORDS}{_M1_TAIL}{prompt}"


def build_planner_prompt(prompt: str, keywords: Sequence[str] | None = None, template: str = "one_shot") -> str:
    """The full M1 input: TD2's instruction in fastchat's conversation template, built exactly as TD2 builds it."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown planner template {template!r}; choose one of {TEMPLATES}")
    conv = get_conv_template(template)  # a fresh copy each call: templates are mutable
    conv.append_message(conv.roles[0], m1_instruction(prompt, keywords))
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


# ----------------------------------------------------------------------------------- completing an M1 layout


def complete_layout(
    layout: Layout,
    texts: Sequence[str],
    heuristic: HeuristicPlanner | None = None,
    seed: int | None = None,
) -> tuple[Layout, list[str]]:
    """Give every requested text that `layout` lacks a box from the heuristic planner, avoiding kept boxes.

    The heuristic lays out all `texts` at each placement (the seed's first) and the placement whose boxes for
    the missing texts overlap the kept boxes least wins. Returns the layout in the order of `texts` (title first,
    so it survives the 77-token prompt), then any unrequested kept boxes, and one warning per filled text.
    """
    heuristic = heuristic or HeuristicPlanner()
    texts = [" ".join(t.split()) for t in texts if t and t.strip()]
    kept = list(layout)
    present = {_norm(b.text) for b in kept}
    missing = [i for i, t in enumerate(texts) if _norm(t) not in present]
    if not missing:
        return layout, []
    roles = [(t, _role(i)) for i, t in enumerate(texts)]
    best: tuple[float, str, list[list[Box]]] | None = None
    for placement in heuristic.placement_order(seed):
        groups = heuristic.place_texts(roles, placement)
        overlap = sum(_overlap(a, b) for i in missing for a in groups[i] for b in kept)
        if best is None or overlap < best[0]:
            best = (overlap, placement, groups)
        if overlap == 0:
            break
    assert best is not None
    overlap, placement, groups = best
    warnings = [
        f"the planner gave the {_role(i) if i else 'title'} {texts[i]!r} no usable box; "
        f"placed it with the heuristic planner ({placement})"
        for i in missing
    ]
    if overlap > 0:
        warnings.append("the heuristic boxes overlap boxes kept from the planner output (no free placement)")
    ordered: list[Box] = []
    for i, t in enumerate(texts):
        ordered += groups[i] if i in missing else [b for b in kept if _norm(b.text) == _norm(t)]
    rest = [b for b in kept if _norm(b.text) not in {_norm(t) for t in texts}]
    return Layout.of(ordered + rest), warnings


def _overlap(a: Box, b: Box) -> float:
    w = min(a.r, b.r) - max(a.l, b.l)
    h = min(a.b, b.b) - max(a.t, b.t)
    return float(w * h) if w > 0 and h > 0 else 0.0


# ------------------------------------------------------------------------------------------------------ M1 planner


class M1Planner:
    """TD2's M1 layout planner (Vicuna-7B fine-tune), loaded lazily once; its output is repaired and completed.

    `generate_fn(prompt) -> text` replaces the LLM entirely (tests, remote endpoints); `model` and `tokenizer`
    inject already-loaded transformers objects. `seed` makes sampling repeatable (TD2's was not).
    """

    def __init__(
        self,
        model_id: str = M1_MODEL_ID,
        generate_fn: Callable[[str], str] | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        device: str | None = None,
        dtype: Any = None,
        quantization: str | None = None,
        temperature: float = 0.7,
        max_new_tokens: int = 512,
        template: str = "one_shot",
        seed: int | None = None,
        local_files_only: bool = False,
        heuristic: HeuristicPlanner | None = None,
    ):
        if template not in TEMPLATES:
            raise ValueError(f"unknown planner template {template!r}; choose one of {TEMPLATES}")
        if quantization not in (None, "8bit", "4bit"):
            raise ValueError(f"quantization must be None, '8bit' or '4bit', got {quantization!r}")
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self.model_id = model_id
        self.generate_fn = generate_fn
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.quantization = quantization
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.template = template
        self.seed = seed
        self.local_files_only = local_files_only
        self.heuristic = heuristic or HeuristicPlanner(seed=seed or 0)

    def plan(
        self, title: str, description: str = "", keywords: list[str] | None = None, *, seed: int | None = None
    ) -> PlanResult:
        """Ask M1 for a layout of the requested texts (always the keyword variant), then repair and complete it."""
        texts = requested_texts(title, keywords)
        if not texts:
            return PlanResult(Layout(), "", "m1", ("nothing to place: the title is empty",))
        prompt = build_planner_prompt(book_caption(title, description), texts, self.template)
        raw = self.generate(prompt, seed=seed)
        answer = raw.split(STOP_STRINGS[self.template], 1)[0]  # the rest is the model writing the next turn
        report = parse_planner_output_report(answer, GRID, texts)
        layout, filled = complete_layout(report.layout, texts, self.heuristic, seed=seed)
        warnings = report.warnings() + filled
        for w in warnings:
            logger.info("M1 plan: %s", w)
        return PlanResult(layout, raw, "m1+heuristic" if filled else "m1", tuple(warnings))

    def generate(self, prompt: str, seed: int | None = None) -> str:
        """The planner's raw answer to a full prompt (only the new tokens, special tokens skipped)."""
        if self.generate_fn is not None:
            return str(self.generate_fn(prompt))
        self.load()
        import torch

        seed = self.seed if seed is None else seed
        tok, model = self.tokenizer, self.model
        device = _model_device(model)
        inputs = tok([prompt], return_token_type_ids=False, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        sampling = self.temperature is not None and self.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": sampling, "pad_token_id": pad}
        if sampling:
            # TD2 passes only these; top-k/top-p stay at the model's generation_config defaults, as in TD2.
            kwargs.update(temperature=float(self.temperature), repetition_penalty=1.0)
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)  # HF generate has no generator argument; fork_rng keeps global state intact
            out = model.generate(**inputs, **kwargs)
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        return tok.decode(new_tokens, skip_special_tokens=True)

    def load(self) -> None:
        """Load tokenizer and model once (fp16 on CUDA, fp32 on CPU, 8/4-bit with bitsandbytes, safetensors first)."""
        if self.model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise PlannerUnavailableError(f"the M1 planner needs torch and transformers ({e})") from None
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = self.dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        # transformers 5 always loads weights lazily (low_cpu_mem_usage is gone), so it is not passed.
        kwargs: dict[str, Any] = {"dtype": dtype}
        if self.quantization:
            if importlib.util.find_spec("bitsandbytes") is None:
                raise PlannerUnavailableError(
                    f"{self.quantization} loading of {self.model_id} needs bitsandbytes: pip install bitsandbytes"
                )
            from transformers import BitsAndBytesConfig

            if self.quantization == "8bit":
                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
            else:
                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
            kwargs["device_map"] = {"": str(device)}
        local = looks_local(self.model_id)
        online = local or (not self.local_files_only and hub_reachable())
        kwargs["local_files_only"] = not online  # offline: the cache only, failing at once instead of retrying
        if not local and device.type == "cpu" and not self.quantization:
            logger.warning("%s", M1_CPU_COST)
        logger.info("loading M1 layout planner %s on %s (%s)", self.model_id, device, self.quantization or dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_id, local_files_only=not online)
            try:
                model = AutoModelForCausalLM.from_pretrained(self.model_id, use_safetensors=True, **kwargs)
            except Exception as e:  # no .safetensors in the repo: fall back to the (slow) .bin shards
                if is_out_of_memory(e):
                    raise
                logger.info("no safetensors weights for %s (%s); trying .bin", self.model_id, _first_line(e))
                model = AutoModelForCausalLM.from_pretrained(self.model_id, use_safetensors=False, **kwargs)
        except Exception as e:
            message = unavailable_message("M1 layout planner", self.model_id, e, online=online)
            raise PlannerUnavailableError(f"{message} The heuristic planner plans without it.") from None
        if not self.quantization:
            model = model.to(device)
        model.eval()
        self.tokenizer, self.model = tokenizer, model


def _model_device(model: Any):
    import torch

    device = getattr(model, "device", None)
    if device is None:
        device = next(model.parameters()).device
    return torch.device(device)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__

