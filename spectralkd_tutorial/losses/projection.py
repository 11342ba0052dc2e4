"""Learned projections (TinyBERT / TextBrewer): a linear map per pair instead of channel pooling.

    X_s^p -> X_s^p W_p^T + b_p,    W_p in R^{H_t x H_s}

    L = (1/P) sum_p mean( [Re, Im] rfft(m * W_p X_s^p) - [Re, Im] rfft(m * X_t^p) )^2     ("spectral-projection")

No pooling: the teacher keeps all its channels, and a student wider than its teacher is possible.
The projections' parameters are trained together with the student's.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .common import as_list, check_pairs, mean_over_pairs
from .registry import register_feature_loss
from .spectral_alignment import spectral_pair_loss

__all__ = ["LayerProjections", "projected_spectral_alignment_loss"]


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
        hidden = as_list(student_hidden, "student_hidden")
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


@register_feature_loss("spectral-projection", needs_projections=True)
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
    pairs = check_pairs(student_hidden, teacher_hidden, attention_mask, grid)
    return mean_over_pairs(spectral_pair_loss(grid), pairs, projections)
