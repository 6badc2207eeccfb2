"""Span kinds and the per-token label ids shared by segmenters, mask builders, losses and training.

Every character of a segmented trajectory's ``text`` belongs to exactly one span kind; every token
gets exactly one label. Only ``REASON`` and ``ACT`` tokens are supervised (the paper's m_r and m_a);
``PROMPT`` and ``OBS`` together form m_o. ``PAD`` marks padding (attention_mask = 0).
"""

from __future__ import annotations

PROMPT = 0   # context the agent did not produce: task, system text, chat-template tokens
REASON = 1   # m_r = 1: reasoning tokens, trained with L_CoT
ACT = 2      # m_a = 1: action tokens (and the assistant end-of-turn token), trained with L_Act
OBS = 3      # environment observations: never supervised
PAD = -1     # padding positions
IGNORE_INDEX = -100  # the only ignore index in ``labels`` tensors (Hugging Face convention)

KINDS = ("prompt", "reason", "act", "obs")
KIND_TO_LABEL = {"prompt": PROMPT, "reason": REASON, "act": ACT, "obs": OBS}
LABEL_TO_KIND = {v: k for k, v in KIND_TO_LABEL.items()}
SUPERVISED = (REASON, ACT)
