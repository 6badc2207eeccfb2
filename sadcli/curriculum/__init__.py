"""``sad curriculum``: order trajectories easy -> hard by the paper's complexity score (§3.5, Eq. 13).

    C(τ) = α · f(len_r) + β · f(len_a) + γ · f(H(π_T(τ)))

Library API::

    from sadcli.curriculum import CurriculumOptions, score_records

    scored = score_records(records, tokenizer, CurriculumOptions(alpha=1, beta=1, gamma=1, scale="cdf", stages=4),
                           teacher=model)            # or teacher_cache="cache/", or gamma=0 and neither
    scored.records    # the records easy -> hard, each with curriculum {len_reason, len_act, entropy, score},
                      # curriculum_rank (empirical CDF of the score, (0, 1]) and curriculum_stage (0..K-1)

Modules: ``score`` (scaling, ranks, stages; numpy/scipy only), ``signals`` (token lengths, teacher
entropy live or from a ``sad distill --cache-teacher`` directory), ``order`` (everything together),
``report`` (the ``--show`` table and ``--plot`` histograms). Pacing during training lives in
:mod:`sadcli.distill.data`. Nothing here imports torch at import time.
"""

from sadcli.curriculum.order import CurriculumOptions, Scored, build, entropy_from_cache, score_records
from sadcli.curriculum.score import SCALES, complexity, ecdf, scale, stages

__all__ = ["SCALES", "CurriculumOptions", "Scored", "build", "complexity", "ecdf", "entropy_from_cache", "scale",
           "score_records", "stages"]
