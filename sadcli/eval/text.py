"""Text comparisons: action normalization, ROUGE-L F1 (Google's ``rouge-score``) and CoT match.

CoT match is *our* definition (the paper's Appendix C is not public): a student's reasoning for a step
matches the teacher's when their ROUGE-L F1 (longest common subsequence of stemmed, lower-cased word
tokens) is at least the threshold, 0.5 by default (``sad eval --cot-threshold``).
"""

from __future__ import annotations

import re

DEFAULT_COT_THRESHOLD = 0.5

_scorer = None


def normalize_action(action: str | None) -> str:
    """Lower case, whitespace collapsed, trailing punctuation dropped: ``" Go to  Desk 1."`` -> ``"go to desk 1"``."""
    if not action:
        return ""
    text = re.sub(r"\s+", " ", action.strip().lower())
    return text.rstrip(" .")


def action_match(a: str | None, b: str | None) -> bool:
    """Whether two actions are the same after :func:`normalize_action` (two empty actions never match)."""
    na, nb = normalize_action(a), normalize_action(b)
    return bool(na) and na == nb


def rouge_l_f1(prediction: str | None, reference: str | None) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference`` (0 when either has no word)."""
    global _scorer
    if not prediction or not reference:
        return 0.0
    if prediction.strip() == reference.strip():  # identical texts match (even without a word ROUGE counts)
        return 1.0
    if _scorer is None:
        from rouge_score import rouge_scorer

        _scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_scorer.score(reference, prediction)["rougeL"].fmeasure)


def cot_match(prediction: str | None, reference: str | None, threshold: float = DEFAULT_COT_THRESHOLD) -> bool:
    """Our CoT match: ROUGE-L F1 >= ``threshold``."""
    return rouge_l_f1(prediction, reference) >= threshold
