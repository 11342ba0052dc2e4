"""Distillation losses: logit KD, SpectralKD spectral alignment, hidden MSE and learned projections.

The student is trained on

    L = (1 - alpha) * CE(z_s, y)  +  alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))  +  beta * L_feat

where ``L_feat`` compares chosen (student layer, teacher layer) pairs of hidden states. Hidden
states are ``(B, L, H)`` for text (L tokens, H channels) and ``(B, N, C)`` for ViT patch tokens
(prefix tokens such as CLS already removed by the caller; ``grid=(h, w)`` with ``h * w = N``).

The SpectralKD feature loss (official ``losses.py``, thy960112/SpectralKD) for one pair is

    X_t' = AvgPool_channels(X_t, H_s)                       parameter-free, only when H_t > H_s
    D    = m * (X_t' - X_s)                                 padded tokens (m = 0) zeroed in both
    F    = rfft(D, along tokens, norm="ortho")              text;  rfft2 over the (h, w) grid for ViT
    L_pair = mean over the stacked [Re F, Im F] of (.)^2    i.e. MSE between the two spectra, in float32

and ``L_spec`` is the mean of ``L_pair`` over pairs. The FFT is linear, so the MSE of the two
spectra is the energy of the spectrum of ``D``; by Parseval that is a re-weighted *spatial* MSE,
which :func:`spectral_as_weighted_spatial_mse` computes without any FFT.

Layer numbering used everywhere in this package: layer 0 is the embedding output, layer l (1..L)
is the output of transformer block l, i.e. Hugging Face ``hidden_states[l]``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, ContextManager, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FEATURE_LOSSES",
    "logit_kd_loss",
    "pool_teacher_channels",
    "spectral_alignment_loss",
    "hidden_mse_loss",
    "LayerProjections",
    "projected_spectral_alignment_loss",
    "spectral_as_weighted_spatial_mse",
    "check_tokenizers_compatible",
    "DistillationLossConfig",
    "distillation_loss",
]

#: Feature losses understood by :class:`DistillationLossConfig` and :func:`distillation_loss`.
FEATURE_LOSSES: tuple[str, ...] = ("spectral", "mse", "projection", "spectral-projection", "none")


# --------------------------------------------------------------------------------------------
# Logit distillation
# --------------------------------------------------------------------------------------------

def logit_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Hinton soft-target loss, ``T^2 * KL(p_t || p_s)`` averaged over the batch.

        p_t = softmax(z_t / T),  p_s = softmax(z_s / T)
        L_KD = T^2 * (1/B) * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log p_s[b,c])

    The ``T^2`` keeps the gradient size independent of ``T``: for large ``T``,
    ``L_KD -> (1/(2C)) * mean_b sum_c (dz_c - mean_c dz)^2`` with ``dz = z_t - z_s`` (logit matching).
    The teacher is detached; computed in float32.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same (batch, classes) shape; "
            "teacher and student need the same label set"
        )
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)  # KL(p_t || p_s)
    return kl * temperature**2


# --------------------------------------------------------------------------------------------
# Shared plumbing: channel pooling, masks, input checks
# --------------------------------------------------------------------------------------------

def pool_teacher_channels(teacher_hidden: Tensor, student_width: int) -> Tensor:
    """Average-pool the last (channel) axis from ``H_t`` down to ``H_s`` (no parameters).

        X_t'[..., j] = mean_{h in [floor(j*H_t/H_s), ceil((j+1)*H_t/H_s))} X_t[..., h]

    (``F.adaptive_avg_pool1d`` semantics, as in the official code; when ``H_s`` divides ``H_t``
    this is the mean of consecutive groups of ``H_t / H_s`` channels.)
    """
    teacher_width = teacher_hidden.shape[-1]
    if student_width == teacher_width:
        return teacher_hidden
    if student_width <= 0:
        raise ValueError(f"student_width must be positive, got {student_width}")
    if student_width > teacher_width:
        raise ValueError(
            f"the student is wider ({student_width} channels) than the teacher ({teacher_width}); "
            "average pooling can only shrink the teacher. Use a learned projection instead: "
            "feature_loss='projection' (or 'spectral-projection') with LayerProjections("
            f"num_pairs, student_width={student_width}, teacher_width={teacher_width})"
        )
    lead = teacher_hidden.shape[:-1]
    flat = teacher_hidden.reshape(-1, 1, teacher_width)  # (rows, 1, H_t): pool1d acts on the last axis
    return F.adaptive_avg_pool1d(flat, student_width).reshape(*lead, student_width)


def _as_list(hidden: Sequence[Tensor] | Tensor, name: str) -> list[Tensor]:
    """One 3-D tensor is one pair; otherwise a sequence of 3-D tensors."""
    if isinstance(hidden, Tensor) and hidden.dim() == 3:
        return [hidden]
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__"):
        raise TypeError(f"{name} must be a sequence of (B, L, H) tensors, got {type(hidden).__name__}")
    return list(hidden)


def _check_pairs(
    student_hidden: Sequence[Tensor] | Tensor,
    teacher_hidden: Sequence[Tensor] | Tensor,
    attention_mask: Tensor | None,
    grid: tuple[int, int] | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Validate pair count, ranks, batch and token axes, the mask and the grid; name the bad pair."""
    students = _as_list(student_hidden, "student_hidden")
    teachers = _as_list(teacher_hidden, "teacher_hidden")
    if len(students) != len(teachers):
        raise ValueError(
            f"pair count mismatch: {len(students)} student hidden states but {len(teachers)} teacher "
            "hidden states; pass one teacher layer per student layer (see spectralkd_tutorial.selection)"
        )
    if not students:
        raise ValueError("no layer pairs given; use feature_loss='none' for logits-only distillation")
    for i, (s, t) in enumerate(zip(students, teachers)):
        for who, x in (("student", s), ("teacher", t)):
            if not isinstance(x, Tensor) or x.dim() != 3:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f"pair {i}: {who} hidden state must be (B, L, H) tokens (ViT: (B, N, C) with prefix "
                    f"tokens removed), got {shape}"
                )
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"pair {i}: batch size mismatch, student {s.shape[0]} vs teacher {t.shape[0]}")
        if s.shape[1] != t.shape[1]:
            raise ValueError(
                f"pair {i}: token count mismatch, student {s.shape[1]} vs teacher {t.shape[1]}; "
                "token-level alignment needs the same tokenizer and the same padding "
                "(ViT: same patch grid, prefix tokens removed)"
            )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(s.shape[:2]):
            raise ValueError(
                f"pair {i}: attention_mask has shape {tuple(attention_mask.shape)} but the hidden "
                f"states are (B, L) = {tuple(s.shape[:2])}"
            )
        if grid is not None:
            if len(grid) != 2 or int(grid[0]) * int(grid[1]) != s.shape[1]:
                raise ValueError(
                    f"pair {i}: grid {tuple(grid)} does not hold {s.shape[1]} patch tokens "
                    "(need h * w == N; remove CLS/distillation tokens first)"
                )
    return students, teachers


def _masked(x: Tensor, attention_mask: Tensor | None) -> Tensor:
    """``m[b, n] * x[b, n, h]``: zero the padded tokens."""
    if attention_mask is None:
        return x
    return x * attention_mask.to(device=x.device, dtype=x.dtype).unsqueeze(-1)


def _autocast_off(device: torch.device) -> ContextManager[Any]:
    """Disable autocast so the FFT runs in the dtype we chose (float32)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type without autocast support
        return contextlib.nullcontext()


def _token_spectrum(x: Tensor, grid: tuple[int, int] | None) -> Tensor:
    """Ortho-normalised real FFT over the token axis (text) or the patch grid (ViT).

    text:  F[b, k, h]    = L^{-1/2} sum_n x[b, n, h] e^{-2 pi i k n / L},     k = 0 .. L//2
    ViT:   F[b, c, u, v] = (hw)^{-1/2} sum_{p,q} x[b, p*w+q, c] e^{-2 pi i (up/h + vq/w)},  v = 0 .. w//2
    """
    if grid is None:
        return torch.fft.rfft(x, dim=1, norm="ortho")  # (B, L//2+1, H)
    h, w = int(grid[0]), int(grid[1])
    b, n, c = x.shape
    image = x.transpose(1, 2).reshape(b, c, h, w)  # row-major patch order -> (B, C, h, w)
    return torch.fft.rfft2(image, norm="ortho")  # (B, C, h, w//2+1)


# --------------------------------------------------------------------------------------------
# SpectralKD spectral alignment
# --------------------------------------------------------------------------------------------

def _pair_spectral_loss(
    student: Tensor, teacher: Tensor, attention_mask: Tensor | None, grid: tuple[int, int] | None
) -> Tensor:
    """``mean([Re, Im](rfft(m * X_s)) - [Re, Im](rfft(m * pool(X_t))))^2`` for one pair, float32."""
    s = _masked(student.float(), attention_mask)
    t = _masked(pool_teacher_channels(teacher.detach().float(), s.shape[-1]), attention_mask)
    spec_s = torch.view_as_real(_token_spectrum(s, grid))  # == stack([F.real, F.imag], -1)
    spec_t = torch.view_as_real(_token_spectrum(t, grid))
    return F.mse_loss(spec_s, spec_t)


def spectral_alignment_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
    *,
    grid: tuple[int, int] | None = None,
) -> Tensor:
    """SpectralKD alignment loss averaged over (student, teacher) layer pairs.

        L_spec = (1/P) * sum_p  mean( [Re, Im] rfft(m * X_s^p) - [Re, Im] rfft(m * pool(X_t^p)) )^2

    ``rfft`` is along the token axis for text (``grid=None``, hidden ``(B, L, H)``) and the 2-D
    ``rfft2`` over the ``(h, w)`` patch grid for ViT (hidden ``(B, h*w, C)``); ``norm="ortho"``.
    The teacher is detached and channel-pooled to the student width; padded tokens (mask 0) are
    zeroed in both; everything is computed in float32 with autocast off, whatever the input dtype.
    """
    students, teachers = _check_pairs(student_hidden, teacher_hidden, attention_mask, grid)
    with _autocast_off(students[0].device):
        losses = [_pair_spectral_loss(s, t, attention_mask, grid) for s, t in zip(students, teachers)]
        return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------------
# Parseval: the spectral loss is a re-weighted spatial loss
# --------------------------------------------------------------------------------------------

def _pair_weighted_spatial(student: Tensor, teacher: Tensor, attention_mask: Tensor | None) -> Tensor:
    """The text-case ``L_pair`` from ``D`` alone: energy + DC and Nyquist sums, no FFT."""
    s = _masked(student.float(), attention_mask)
    t = _masked(pool_teacher_channels(teacher.detach().float(), s.shape[-1]), attention_mask)
    d = t - s  # (B, L, H), zero at padded tokens
    b, length, h = d.shape
    kept = length // 2 + 1  # K: columns the rfft keeps
    energy = d.pow(2).sum()  # sum_n D_n^2                 (= sum_k w_k |F_k|^2 by Parseval)
    dc = d.sum(dim=1).pow(2).sum() / length  # |F_0|^2   = (sum_n D_n)^2 / L
    nyquist = d.new_zeros(())
    if length % 2 == 0:  # |F_{L/2}|^2 = (sum_n (-1)^n D_n)^2 / L
        sign = 1.0 - 2.0 * (torch.arange(length, device=d.device) % 2).to(d.dtype)
        nyquist = (d * sign[None, :, None]).sum(dim=1).pow(2).sum() / length
    return (energy + dc + nyquist) / (4 * b * kept * h)


def spectral_as_weighted_spatial_mse(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
) -> Tensor:
    """The text spectral loss rewritten in token space by Parseval (no FFT); equals
    :func:`spectral_alignment_loss` (``grid=None``).

    For one sample and channel let ``D_n = m_n (pool(X_t) - X_s)_n``, ``n = 0 .. L-1`` (real), and
    ``F_k = L^{-1/2} sum_n D_n e^{-2 pi i k n / L}``. Parseval gives ``sum_{k<L} |F_k|^2 = sum_n D_n^2``
    and a real ``D`` has ``F_{L-k} = conj(F_k)``, so over the ``K = L//2 + 1`` columns rfft keeps

        sum_{k<K} w_k |F_k|^2 = sum_n D_n^2,   w_0 = 1, w_{L/2} = 1 (L even), w_k = 2 otherwise
        sum_{k<K}     |F_k|^2 = 1/2 * ( sum_n D_n^2 + |F_0|^2 + [L even] |F_{L/2}|^2 )
        |F_0|^2 = (sum_n D_n)^2 / L,     |F_{L/2}|^2 = (sum_n (-1)^n D_n)^2 / L

    The MSE over stacked real and imaginary parts divides by ``2 * B * K * H``, hence

        L_pair = 1/(4BKH) * sum_{b,h} [ sum_n D_n^2 + (sum_n D_n)^2 / L + [L even] (sum_n (-1)^n D_n)^2 / L ]
               = (L / 4K) * MSE_plain + (DC and Nyquist terms >= 0),   MSE_plain = sum D^2 / (B L H)

    The honest reading: the spectral loss is a spatial MSE in disguise. ``L/(4K)`` is
    ``L/(2L+4)`` (L even) or ``L/(2L+2)`` (L odd), about one half; the spectral MSE weights every
    kept column equally although Parseval weights DC and Nyquist by 1 and the rest by 2, so the DC
    (token-mean error) and Nyquist (alternating-sign error) columns get double weight. Since the
    kept columns hold at most all the energy, ``L/(4K) <= L_pair / MSE_plain <= L/(2K)``. Padding
    counts in ``L`` and ``B*L`` (zeros), so against a mask-aware MSE over ``N_real`` real tokens the
    ratio is ``N_real/(4BK) .. N_real/(2BK)``.
    """
    students, teachers = _check_pairs(student_hidden, teacher_hidden, attention_mask, None)
    with _autocast_off(students[0].device):
        losses = [_pair_weighted_spatial(s, t, attention_mask) for s, t in zip(students, teachers)]
        return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------------
# Baselines: hidden MSE and learned projections (TinyBERT / TextBrewer)
# --------------------------------------------------------------------------------------------

class LayerProjections(nn.Module):
    """One learned linear map per pair, student width -> teacher width (TinyBERT's ``W_h``).

        X_s^p -> X_s^p W_p^T + b_p,    W_p in R^{H_t x H_s}

    Its parameters must be given to the optimizer together with the student's.
    """

    def __init__(self, num_pairs: int, student_width: int, teacher_width: int) -> None:
        super().__init__()
        if num_pairs <= 0 or student_width <= 0 or teacher_width <= 0:
            raise ValueError(
                f"num_pairs, student_width and teacher_width must be positive, got "
                f"{num_pairs}, {student_width}, {teacher_width}"
            )
        self.num_pairs, self.student_width, self.teacher_width = num_pairs, student_width, teacher_width
        self.maps = nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(num_pairs))

    def forward(self, student_hidden: Sequence[Tensor]) -> list[Tensor]:
        """Project each student hidden state ``(B, L, H_s)`` to ``(B, L, H_t)``."""
        hidden = _as_list(student_hidden, "student_hidden")
        if len(hidden) != self.num_pairs:
            raise ValueError(
                f"LayerProjections was built for {self.num_pairs} pairs but got {len(hidden)} hidden states"
            )
        out = []
        for i, (x, proj) in enumerate(zip(hidden, self.maps)):
            if x.shape[-1] != self.student_width:
                raise ValueError(
                    f"pair {i}: student hidden width {x.shape[-1]} != projection input width {self.student_width}"
                )
            out.append(proj(x.to(proj.weight.dtype)))
        return out

    def extra_repr(self) -> str:
        return f"num_pairs={self.num_pairs}, student_width={self.student_width}, teacher_width={self.teacher_width}"


def _pair_masked_mse(student: Tensor, teacher: Tensor, attention_mask: Tensor | None) -> Tensor:
    """``sum_{b,n,h} m[b,n] (X_s - X_t)^2 / (N_real * H)``: the mean over real tokens only."""
    diff = _masked(student.float() - teacher.detach().float(), attention_mask)
    real_tokens = (
        float(diff.shape[0] * diff.shape[1]) if attention_mask is None
        else attention_mask.to(diff.dtype).sum().clamp_min(1.0)
    )
    return diff.pow(2).sum() / (real_tokens * diff.shape[-1])


def hidden_mse_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
    projections: LayerProjections | None = None,
) -> Tensor:
    """Masked hidden-state MSE averaged over pairs (PKD / TinyBERT style).

        L_mse = (1/P) sum_p  sum_{b,n,h} m[b,n] (g_p(X_s^p) - f(X_t^p))^2 / (N_real * H')

    Without projections ``g = id`` and ``f = pool`` to the student width (``H' = H_s``); with them
    ``g = W_p`` (student up to the teacher width) and ``f = id`` (``H' = H_t``). Teacher detached.
    """
    students, teachers = _check_pairs(student_hidden, teacher_hidden, attention_mask)
    if projections is not None:
        students = projections(students)
        _check_projected_width(students, teachers)
    else:
        teachers = [pool_teacher_channels(t, s.shape[-1]) for s, t in zip(students, teachers)]
    losses = [_pair_masked_mse(s, t, attention_mask) for s, t in zip(students, teachers)]
    return torch.stack(losses).mean()


def _check_projected_width(projected: Sequence[Tensor], teachers: Sequence[Tensor]) -> None:
    for i, (s, t) in enumerate(zip(projected, teachers)):
        if s.shape[-1] != t.shape[-1]:
            raise ValueError(
                f"pair {i}: projected student width {s.shape[-1]} != teacher width {t.shape[-1]}; "
                "build LayerProjections(num_pairs, student_width, teacher_width) with the teacher's width"
            )


def projected_spectral_alignment_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None,
    projections: LayerProjections,
    *,
    grid: tuple[int, int] | None = None,
) -> Tensor:
    """Spectral alignment after a learned projection of the student to the teacher width.

        L = (1/P) sum_p mean( [Re, Im] rfft(m * W_p X_s^p) - [Re, Im] rfft(m * X_t^p) )^2

    No pooling: the teacher keeps all its channels (e.g. a 768-wide student against a 1024-wide
    teacher), and the projection also makes a student wider than its teacher possible.
    """
    students, teachers = _check_pairs(student_hidden, teacher_hidden, attention_mask, grid)
    projected = projections(students)
    _check_projected_width(projected, teachers)
    return spectral_alignment_loss(projected, teachers, attention_mask, grid=grid)


# --------------------------------------------------------------------------------------------
# Tokenizers: token-axis losses need identical tokenisation
# --------------------------------------------------------------------------------------------

def _tokens(tokenizer: Any, text: str) -> tuple[list[int], list[str] | None]:
    ids = list(tokenizer(text)["input_ids"])
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    return ids, (list(convert(ids)) if callable(convert) else None)


def check_tokenizers_compatible(
    teacher_tokenizer: Any, student_tokenizer: Any, sample_texts: Sequence[str]
) -> None:
    """Raise ``ValueError`` unless both tokenizers split every sample text identically.

    Token-axis losses compare token ``n`` of the student with token ``n`` of the teacher, so the
    two sequences must have the same length and the same tokens (same ids, or at least the same
    token strings when only the vocabulary numbering differs).
    """
    texts = [sample_texts] if isinstance(sample_texts, str) else list(sample_texts)
    if not texts:
        raise ValueError("sample_texts is empty; pass a few training texts to compare the tokenizers on")
    for text in texts:
        ids_t, tok_t = _tokens(teacher_tokenizer, text)
        ids_s, tok_s = _tokens(student_tokenizer, text)
        if ids_t == ids_s or (tok_t is not None and tok_t == tok_s):
            continue
        raise ValueError(
            "teacher and student tokenizers split the text differently, so token-axis spectral / hidden "
            "losses are impossible (token n of one model is not token n of the other).\n"
            f"  text:    {text!r}\n"
            f"  teacher: {len(ids_t)} tokens {tok_t if tok_t is not None else ids_t}\n"
            f"  student: {len(ids_s)} tokens {tok_s if tok_s is not None else ids_s}\n"
            "Use logits-only KD (feature_loss='none'), or a student that uses the teacher's tokenizer "
            "(e.g. initialise it from the teacher's layers)."
        )


# --------------------------------------------------------------------------------------------
# The total distillation objective
# --------------------------------------------------------------------------------------------

@dataclass
class DistillationLossConfig:
    """Weights of ``L = (1 - alpha) CE + alpha T^2 KL + beta L_feat`` and the feature loss to use.

    ``feature_loss``: ``"spectral"`` (SpectralKD, pooled teacher), ``"mse"`` (hidden MSE, pooled
    teacher), ``"projection"`` (hidden MSE through :class:`LayerProjections`),
    ``"spectral-projection"`` (spectral loss through :class:`LayerProjections`), ``"none"`` (logits only).
    """

    alpha: float = 0.5
    temperature: float = 2.0
    beta: float = 1.0
    feature_loss: str = "spectral"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha (weight of KD vs CE) must be in [0, 1], got {self.alpha!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta (weight of the feature loss) must be finite and >= 0, got {self.beta!r}")
        if self.feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"feature_loss must be one of {FEATURE_LOSSES}, got {self.feature_loss!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    @property
    def needs_projections(self) -> bool:
        """Whether :func:`distillation_loss` needs a :class:`LayerProjections` module."""
        return self.feature_loss in ("projection", "spectral-projection")


def _feature_loss(
    student_hidden: Sequence[Tensor] | None,
    teacher_hidden: Sequence[Tensor] | None,
    attention_mask: Tensor | None,
    config: DistillationLossConfig,
    projections: LayerProjections | None,
    grid: tuple[int, int] | None,
    like: Tensor,
) -> Tensor:
    kind = config.feature_loss
    if kind == "none":
        return like.new_zeros((), dtype=torch.float32)
    if student_hidden is None or teacher_hidden is None:
        raise ValueError(f"feature_loss={kind!r} needs student_hidden and teacher_hidden; use 'none' for logits only")
    if config.needs_projections and projections is None:
        raise ValueError(
            f"feature_loss={kind!r} needs projections=LayerProjections(num_pairs, student_width, "
            "teacher_width), with its parameters in the optimizer"
        )
    if kind == "spectral":
        return spectral_alignment_loss(student_hidden, teacher_hidden, attention_mask, grid=grid)
    if kind == "mse":
        return hidden_mse_loss(student_hidden, teacher_hidden, attention_mask)
    if kind == "projection":
        return hidden_mse_loss(student_hidden, teacher_hidden, attention_mask, projections)
    return projected_spectral_alignment_loss(
        student_hidden, teacher_hidden, attention_mask, projections, grid=grid  # type: ignore[arg-type]
    )


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    student_hidden: Sequence[Tensor] | None,
    teacher_hidden: Sequence[Tensor] | None,
    attention_mask: Tensor | None,
    config: DistillationLossConfig,
    projections: LayerProjections | None = None,
    grid: tuple[int, int] | None = None,
) -> dict[str, Tensor]:
    """The full objective and its parts.

        L = (1 - alpha) * CE(z_s, y; label_smoothing) + alpha * T^2 * KL(p_t^T || p_s^T) + beta * L_feat

    Returns ``{"loss": L, "ce": CE, "kd": T^2 KL, "feature": L_feat}`` (unweighted parts).
    Raises ``FloatingPointError`` when ``L`` is NaN or infinite.
    """
    ce = F.cross_entropy(student_logits.float(), labels, label_smoothing=config.label_smoothing)
    kd = logit_kd_loss(student_logits, teacher_logits, config.temperature)
    feature = _feature_loss(student_hidden, teacher_hidden, attention_mask, config, projections, grid, ce)
    total = (1.0 - config.alpha) * ce + config.alpha * kd + config.beta * feature
    if not bool(torch.isfinite(total)):
        raise FloatingPointError(
            f"non-finite loss {total.item()} (ce={ce.item()}, kd={kd.item()}, feature={feature.item()}); "
            "lower the learning rate / check inputs (NaN or Inf in logits or hidden states?)"
        )
    return {"loss": total, "ce": ce, "kd": kd, "feature": feature}
