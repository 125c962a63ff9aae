"""Architecture templates and mutations for tier 3: the code the offline model writes.

An `ArchitectureSpec` describes one 1D convolutional network for (B, C, T) windows: a stride-2
stem, `stages` stages of `blocks_per_stage` blocks (residual or plain, with optional
squeeze-and-excitation gates and per-stage dilation), an optional attention stage (a small
self-attention block, or attention pooling over time) and a linear head. `render_source(spec)`
writes it as a model module that follows the model contract of `biosignals.models`
(keyword-only `in_channels`, `input_length`, `num_classes` plus scalar hyperparameters with
defaults; `forward` maps (B, C, T) to (B, num_classes)), imports only torch and passes
`agent.safety.code_policy.validate_model_source`. The rendered constructor also declares the
contract's optional `num_features: int = 0`, so the trainer passes the dataset's per-window
side features (ECG: 9 RR-interval features) as `forward(x, features)` with features (B, F):
they are fused late, `ReLU(Linear(F, 16))` concatenated with the pooled embedding before the
head.

`mutations(base, index)` is the deterministic index-th variant of `base`: index 0 is `base`
itself, then every variant that changes one design choice (attention, SE gates, kernel size,
dilation, depth, blocks per stage, width, block type), then two choices, and so on, keeping
only variants whose parameter count (`estimate_params`, exact for the rendered code) stays
within a budget. Different indices give different specs.

Example:
    >>> spec = mutations(base_spec("resnet1d"), 1)
    >>> spec.attention, estimate_params(spec) < 100_000
    ('pool', True)
    >>> "class SEResNet1D(nn.Module)" in render_source(spec)
    True
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "FAMILY_BASES",
    "FEATURE_EMBED",
    "ArchitectureSpec",
    "base_spec",
    "estimate_params",
    "family_of",
    "model_args",
    "mutations",
    "render_source",
]

Block = Literal["residual", "plain"]
Attention = Literal["none", "pool", "self"]

DEFAULT_MAX_PARAMS = 100_000
"""Parameter budget of `mutations` (at 1 input channel and 5 classes): campaigns constrain
`num_params` (a watch-sized model is 100k), so no variant is bigger by default."""

_MAX_CHANNEL_MULT = 4  # channels stop doubling at 4 * width: keeps deep variants small
FEATURE_EMBED = 16
"""Width of the side features' projection in rendered models (late fusion before the head)."""
_MAX_CYCLES = 8  # index beyond the variant count: the list repeats with more dropout


@dataclass(frozen=True)
class ArchitectureSpec:
    """One network of the tier-3 template family.

    Attributes:
        family: lineage name, used in model names (`gen_<family>_<index>`); lowercase letters.
        block: "residual" (conv-bn-relu-conv-bn plus a skip) or "plain" (conv-bn-relu).
        width: stem channels; stage s has `width * min(2**s, 4)` channels.
        stages: number of stages; each after the first halves the time axis.
        blocks_per_stage: blocks per stage.
        kernel_size: odd convolution kernel size.
        dilation: dilation growth per stage: stage s dilates by `dilation ** min(s, 2)`.
        se: squeeze-and-excitation channel gates after each block.
        reduction: SE bottleneck ratio.
        attention: "none" (mean pooling), "pool" (learned attention pooling over time) or
            "self" (a pre-norm self-attention block over time steps, then mean pooling).
        heads: attention heads of the "self" block; must divide the last stage's channels.
        dropout: dropout before the head (and inside the attention block).
    """

    family: str = "seresnet"
    block: Block = "residual"
    width: int = 16
    stages: int = 3
    blocks_per_stage: int = 1
    kernel_size: int = 7
    dilation: int = 1
    se: bool = True
    reduction: int = 4
    attention: Attention = "none"
    heads: int = 4
    dropout: float = 0.1

    @property
    def class_name(self) -> str:
        """Name of the rendered model class (`SEResNet1D`, `ConvAttnNet1D`, ...)."""
        se = "SE" if self.se else ""
        body = "Res" if self.block == "residual" else "Conv"
        attn = {"none": "", "pool": "Pool", "self": "Attn"}[self.attention]
        return f"{se}{body}{attn}Net1D"

    def channels(self) -> list[int]:
        """Channels of each stage."""
        return [self.width * min(2**s, _MAX_CHANNEL_MULT) for s in range(self.stages)]

    def problems(self) -> list[str]:
        """What makes this spec unbuildable (empty when it is fine)."""
        out = []
        if not re.fullmatch(r"[a-z]{1,20}", self.family):
            out.append(f"family must be 1-20 lowercase letters, got {self.family!r}")
        if self.block not in ("residual", "plain"):
            out.append(f"block must be 'residual' or 'plain', got {self.block!r}")
        if self.attention not in ("none", "pool", "self"):
            out.append(f"attention must be 'none', 'pool' or 'self', got {self.attention!r}")
        for name in ("width", "stages", "blocks_per_stage", "dilation", "reduction", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"{name} must be a positive int, got {value!r}")
        if (
            not isinstance(self.kernel_size, int)
            or self.kernel_size < 1
            or self.kernel_size % 2 == 0
        ):
            out.append(f"kernel_size must be a positive odd int, got {self.kernel_size!r}")
        if not 0.0 <= self.dropout < 1.0:
            out.append(f"dropout must satisfy 0 <= dropout < 1, got {self.dropout!r}")
        if not out and self.attention == "self" and self.channels()[-1] % self.heads:
            out.append(
                f"heads={self.heads} must divide the last stage's {self.channels()[-1]} channels"
            )
        return out

    def describe(self) -> str:
        """One line naming the design choices (for rationales and docstrings)."""
        parts = [
            f"{self.block} blocks",
            f"{self.stages} stages x {self.blocks_per_stage}",
            f"width {self.width}",
            f"kernel {self.kernel_size}",
        ]
        if self.dilation > 1:
            parts.append(f"dilation x{self.dilation} per stage")
        if self.se:
            parts.append("squeeze-and-excitation")
        if self.attention == "pool":
            parts.append("attention pooling")
        elif self.attention == "self":
            parts.append(f"self-attention ({self.heads} heads)")
        return ", ".join(parts)


FAMILY_BASES: dict[str, ArchitectureSpec] = {
    # the SE-ResNet template of agent.models.examples, one block per stage
    "seresnet": ArchitectureSpec(family="seresnet"),
    # a plain CNN like cnn1d, two conv blocks per stage
    "cnn": ArchitectureSpec(family="cnn", block="plain", se=False, blocks_per_stage=2),
    # convolutions then self-attention over time, like the patch encoder_classifier
    "convattn": ArchitectureSpec(family="convattn", block="plain", se=False, attention="self"),
}
"""The starting spec of each family; mutations of one base keep its family name."""

_MODEL_FAMILIES = {"cnn1d": "cnn", "resnet1d": "seresnet", "encoder_classifier": "convattn"}
_GENERATED_NAME = re.compile(r"gen_([a-z]+)_\d+")


def family_of(model: str | None) -> str:
    """The template family closest to `model`: a built-in model, or a generated
    `gen_<family>_<index>`; "seresnet" for anything else."""
    if model:
        match = _GENERATED_NAME.fullmatch(model)
        if match and match.group(1) in FAMILY_BASES:
            return match.group(1)
        root = re.sub(r"_w\d+$", "", model)  # a tier-2 width variant (`resnet1d_w32`)
        if root in _MODEL_FAMILIES:
            return _MODEL_FAMILIES[root]
    return "seresnet"


def base_spec(model: str | None) -> ArchitectureSpec:
    """The base spec of `family_of(model)`."""
    return FAMILY_BASES[family_of(model)]


# ---------------------------------------------------------------------------- parameters


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k  # bias-free: a BatchNorm follows


def _bn(c: int) -> int:
    return 2 * c


def _se(c: int, reduction: int) -> int:
    hidden = max(c // reduction, 4)
    return c * hidden + hidden + hidden * c + c


def estimate_params(
    spec: ArchitectureSpec, in_channels: int = 1, num_classes: int = 5, num_features: int = 0
) -> int:
    """Trainable parameters of `render_source(spec)`'s model (exact; independent of T).

    Args:
        spec: the architecture.
        in_channels: input channels C.
        num_classes: outputs.
        num_features: side features F per window the model is built with (0: none); F > 0
            adds the projection `Linear(F, 16)` and 16 head inputs.

    Returns:
        The parameter count.
    """
    k = spec.kernel_size
    total = _conv(in_channels, spec.width, k) + _bn(spec.width)  # stem
    c = spec.width
    for s, c_out in enumerate(spec.channels()):
        for b in range(spec.blocks_per_stage):
            stride = 2 if s > 0 and b == 0 else 1
            total += _conv(c, c_out, k) + _bn(c_out)
            if spec.block == "residual":
                total += _conv(c_out, c_out, k) + _bn(c_out)
                if stride != 1 or c != c_out:
                    total += _conv(c, c_out, 1) + _bn(c_out)
            if spec.se:
                total += _se(c_out, spec.reduction)
            c = c_out
    if spec.attention == "self":
        total += 2 * c + (4 * c * c + 4 * c) + 2 * c + (4 * c * c + 3 * c)  # norms, MHA, MLP
    elif spec.attention == "pool":
        total += c + 1
    if num_features > 0:
        total += num_features * FEATURE_EMBED + FEATURE_EMBED  # the features' projection
        c += FEATURE_EMBED  # fused into the head's input
    return total + c * num_classes + num_classes


# ----------------------------------------------------------------------------- mutations

# dimension -> alternatives to the base value, nearest first; the order of the dimensions is
# the order single-choice variants come in
_ALTERNATIVES: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("attention", ("pool", "self", "none")),
    ("se", (True, False)),
    ("kernel_size", (5, 9, 3, 7)),
    ("dilation", (2, 1)),
    ("stages", (4, 2, 3)),
    ("blocks_per_stage", (2, 1)),
    ("width", ()),  # relative to the base: 1.5x and 0.5x (see `_options`)
    ("block", ("residual", "plain")),
)


def _options(base: ArchitectureSpec, name: str, alternatives: tuple[Any, ...]) -> list[Any]:
    """The base value first, then the alternatives that differ from it."""
    current = getattr(base, name)
    if name == "width":
        alternatives = (current * 3 // 2, max(current // 2, 4))  # wider, narrower
    out = [current]
    for value in alternatives:
        if value not in out:
            out.append(value)
    return out


@functools.lru_cache(maxsize=32)
def _variants(base: ArchitectureSpec, max_params: int) -> tuple[ArchitectureSpec, ...]:
    """Every buildable variant of `base` within `max_params`, fewest changes first."""
    names = [name for name, _ in _ALTERNATIVES]
    options = [_options(base, name, alts) for name, alts in _ALTERNATIVES]
    keyed: list[tuple[tuple[int, tuple[tuple[int, int], ...]], ArchitectureSpec]] = []
    for choice in itertools.product(*(range(len(o)) for o in options)):
        changed = tuple((d, i) for d, i in enumerate(choice) if i)
        spec = replace(base, **{names[d]: options[d][i] for d, i in enumerate(choice)})
        if spec.problems() or estimate_params(spec) > max_params:
            continue
        keyed.append(((len(changed), changed), spec))
    keyed.sort(key=lambda item: item[0])
    return tuple(spec for _, spec in keyed)


def mutations(
    base: ArchitectureSpec, index: int, *, max_params: int = DEFAULT_MAX_PARAMS
) -> ArchitectureSpec:
    """The `index`-th variant of `base` (deterministic; see the module docstring).

    Index 0 is `base` (when it fits the budget), then single-choice changes, then pairs, ...
    Past the last variant the list repeats with dropout raised by 0.05 per round, so indices
    below `_MAX_CYCLES` times the variant count (thousands) all give different specs.

    Args:
        base: the spec to vary (its family name is kept).
        index: which variant, >= 0.
        max_params: parameter budget at 1 input channel and 5 classes.

    Returns:
        The variant.

    Raises:
        ValueError: a negative index, an unbuildable base, or no variant within the budget.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}; pass 0 for the base spec")
    problems = base.problems()
    if problems:
        raise ValueError("base spec is not buildable: " + "; ".join(problems))
    variants = _variants(base, max_params)
    if not variants:
        raise ValueError(
            f"no variant of {base.describe()} has at most {max_params} parameters; "
            "start from a narrower base or raise max_params"
        )
    cycle, position = divmod(index, len(variants))
    spec = variants[position]
    if cycle:
        dropout = round(min(spec.dropout + 0.05 * (cycle % _MAX_CYCLES), 0.9), 2)
        spec = replace(spec, dropout=dropout)
    return spec


def model_args(spec: ArchitectureSpec) -> dict[str, int | float]:
    """The constructor's scalar hyperparameters of the rendered model (its config values)."""
    args: dict[str, int | float] = {
        "width": spec.width,
        "stages": spec.stages,
        "blocks_per_stage": spec.blocks_per_stage,
        "kernel_size": spec.kernel_size,
        "dilation": spec.dilation,
    }
    if spec.se:
        args["reduction"] = spec.reduction
    if spec.attention == "self":
        args["heads"] = spec.heads
    args["dropout"] = spec.dropout
    return args


# ----------------------------------------------------------------------------- rendering

_SE_CLASS = '''

class SqueezeExcite(nn.Module):
    """Channel gates from the time-averaged features (Hu et al. 2018)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(x.mean(dim=-1)).unsqueeze(-1)  # (B, C, 1): one weight per channel
        return x * w  # (B, C, T)
'''

_RESIDUAL_BLOCK = '''

class Block(nn.Module):
    """conv-bn-relu-conv-bn{se_doc} plus a (projected when shapes differ) skip, then relu."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, dilation: int{se_arg}
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(
            c_out, c_out, kernel_size, padding=pad * dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm1d(c_out){se_init}
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))  # (B, c_out, T / stride)
        h = self.bn2(self.conv2(h))  # (B, c_out, T / stride){se_forward}
        return torch.relu(h + self.skip(x))  # (B, c_out, T / stride)
'''

_PLAIN_BLOCK = '''

class Block(nn.Module):
    """conv-bn-relu{se_doc}; a stride-2 block halves the time axis."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, dilation: int{se_arg}
    ) -> None:
        super().__init__()
        pad = (kernel_size // 2) * dilation  # keeps T / stride samples
        self.conv = nn.Conv1d(
            c_in, c_out, kernel_size, stride=stride, padding=pad, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm1d(c_out){se_init}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))  # (B, c_out, T / stride){se_forward}
        return h
'''

_SELF_ATTENTION = '''

class SelfAttention(nn.Module):
    """A pre-norm transformer block over time steps: self-attention, then a small MLP."""

    def __init__(self, channels: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, T, C): one token per time step
        a = self.norm1(h)  # (B, T, C)
        h = h + self.attn(a, a, a, need_weights=False)[0]  # (B, T, C)
        h = h + self.mlp(self.norm2(h))  # (B, T, C)
        return h.transpose(1, 2)  # (B, C, T)
'''

_ATTENTION_POOL = '''

class AttentionPool(nn.Module):
    """Learned weights over time steps instead of a plain mean."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(x), dim=-1)  # (B, 1, T): weights over time, sum 1
        return (x * w).sum(dim=-1)  # (B, C)
'''

_MODEL = '''

class {cls}(nn.Module):
    """{summary}

    Args:
        in_channels: channels C of the input windows.
        input_length: samples T per window (T >= 2**stages).
        num_classes: outputs (class count, or 1 for regression).
        num_features: side features F per window (0: none); F > 0 fuses ReLU(Linear(F, 16))
            of forward's `features` (B, F) with the pooled embedding before the head.
        width: stem channels; stage s has width * min(2**s, 4).
        stages: number of stages; each after the first halves the time axis.
        blocks_per_stage: blocks per stage.
        kernel_size: odd convolution kernel size.
        dilation: dilation growth per stage (stage s: dilation ** min(s, 2)).{extra_doc}
        dropout: dropout probability before the head.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        input_length: int,
        num_classes: int,
        num_features: int = 0,
        width: int = {width},
        stages: int = {stages},
        blocks_per_stage: int = {blocks_per_stage},
        kernel_size: int = {kernel_size},
        dilation: int = {dilation},{extra_args}
        dropout: float = {dropout},
    ) -> None:
        super().__init__()
        if min(width, stages, blocks_per_stage, dilation) < 1 or kernel_size % 2 == 0:
            raise ValueError(
                "width, stages, blocks_per_stage and dilation must be >= 1 and kernel_size odd, "
                f"got {{width}}, {{stages}}, {{blocks_per_stage}}, {{dilation}}, {{kernel_size}}"
            )
        if input_length < 2**stages:
            raise ValueError(
                f"input_length must be >= 2**stages = {{2**stages}}, got {{input_length}}; "
                "use fewer stages"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must satisfy 0 <= dropout < 1, got {{dropout}}")
        if num_features < 0:
            raise ValueError(f"num_features must be >= 0, got {{num_features}}")
        pad = kernel_size // 2
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, kernel_size, stride=2, padding=pad, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
        )
        blocks = []
        c = width
        for s in range(stages):
            c_out = width * min(2**s, 4)  # channels stop doubling at 4 * width
            for b in range(blocks_per_stage):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(
                    Block(c, c_out, kernel_size, stride, dilation ** min(s, 2){block_extra})
                )
                c = c_out
        self.blocks = nn.Sequential(*blocks){head_init}
        self.num_features = num_features
        if num_features > 0:  # late fusion of the side features (RR intervals for ECG)
            self.feature_proj = nn.Sequential(nn.Linear(num_features, {embed}), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c + ({embed} if num_features > 0 else 0), num_classes)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(x)  # (B, width, T / 2)
        h = self.blocks(h)  # (B, C_last, T / 2**stages){head_forward}
        if self.num_features > 0:
            if features is None:  # called without side features: zeros stand in for them
                features = h.new_zeros(h.shape[0], self.num_features)  # (B, F)
            f = self.feature_proj(features.to(h.dtype))  # (B, {embed})
            h = torch.cat([h, f], dim=1)  # (B, C_last + {embed})
        return self.head(self.dropout(h))  # (B, num_classes)
'''


def render_source(spec: ArchitectureSpec) -> str:
    """Python source of a model module for `spec` (ends with a newline).

    The module imports only torch, defines its helper blocks and one model class
    (`spec.class_name`) whose constructor takes the model contract's keyword arguments (the
    optional `num_features: int = 0` too, see the module docstring) plus the hyperparameters
    of `model_args(spec)` with the spec's values as defaults; `forward(x, features=None)`.

    Raises:
        ValueError: the spec is not buildable (`spec.problems()`).
    """
    problems = spec.problems()
    if problems:
        raise ValueError("cannot render this spec: " + "; ".join(problems))
    se = spec.se
    block_template = _RESIDUAL_BLOCK if spec.block == "residual" else _PLAIN_BLOCK
    block = block_template.format(
        se_doc=", squeeze-and-excitation gates" if se else "",
        se_arg=", reduction: int" if se else "",
        se_init="\n        self.se = SqueezeExcite(c_out, reduction)" if se else "",
        se_forward="\n        h = self.se(h)  # (B, c_out, T / stride): channels re-weighted"
        if se
        else "",
    )
    extra_doc, extra_args, head_init, head_forward = "", "", "", ""
    if se:
        extra_doc += "\n        reduction: squeeze-and-excitation bottleneck ratio."
        extra_args += f"\n        reduction: int = {spec.reduction},"
    if spec.attention == "self":
        extra_doc += "\n        heads: self-attention heads (divide the last stage's channels)."
        extra_args += f"\n        heads: int = {spec.heads},"
        head_init = "\n        self.attn = SelfAttention(c, heads, dropout)"
        head_forward = (
            "\n        h = self.attn(h)  # (B, C_last, T / 2**stages): attention over time"
            "\n        h = h.mean(dim=-1)  # (B, C_last)"
        )
    elif spec.attention == "pool":
        head_init = "\n        self.pool = AttentionPool(c)"
        head_forward = "\n        h = self.pool(h)  # (B, C_last): attention-weighted over time"
    else:
        head_forward = "\n        h = h.mean(dim=-1)  # (B, C_last): global average over time"
    model = _MODEL.format(
        cls=spec.class_name,
        summary=f"{spec.class_name}: {spec.describe()}; (B, C, T) [+ (B, F)] -> (B, num_classes).",
        width=spec.width,
        stages=spec.stages,
        blocks_per_stage=spec.blocks_per_stage,
        kernel_size=spec.kernel_size,
        dilation=spec.dilation,
        dropout=spec.dropout,
        extra_doc=extra_doc,
        extra_args=extra_args,
        block_extra=", reduction" if se else "",
        head_init=head_init,
        head_forward=head_forward,
        embed=FEATURE_EMBED,
    )
    header = (
        f'"""{spec.class_name}: a 1D network written by agentune\'s offline model '
        f"(family {spec.family}).\n\n"
        f"{_wrap(spec.describe() + '.')}\n"
        "A stride-2 stem, then stages that halve the time axis and double the channels (up to\n"
        f"4x width), then {_head_words(spec)} and a linear head (with num_features > 0, the\n"
        f"side features are projected to {FEATURE_EMBED} and concatenated before it).\n"
        '"""\n\n'
        "import torch\nfrom torch import nn\n"
    )
    parts = [header]
    if se:
        parts.append(_SE_CLASS)
    parts.append(block)
    if spec.attention == "self":
        parts.append(_SELF_ATTENTION)
    elif spec.attention == "pool":
        parts.append(_ATTENTION_POOL)
    parts.append(model)
    return "".join(parts)


def _head_words(spec: ArchitectureSpec) -> str:
    return {
        "none": "global average pooling",
        "pool": "attention pooling over time",
        "self": "a self-attention block over time steps, average pooling",
    }[spec.attention]


def _wrap(text: str, width: int = 92) -> str:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)
