"""The data the mask builders produce: one :class:`MaskedExample` per trajectory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sadcli.labels import ACT, IGNORE_INDEX, REASON


@dataclass
class Rendered:
    """The string that gets tokenized, cut into spans that partition it.

    Parallel lists, one entry per span: ``starts``/``ends`` (character offsets), ``labels``
    (sadcli.labels ids), ``steps`` (-1 for the prompt) and ``sources`` (index into the record's
    ``spans``; -1 for chat-template text). ``eot`` lists the spans that hold an assistant
    end-of-turn token (chat rendering), ``turn_ends`` the character offset where each assistant
    turn's content ends (to report a missing end-of-turn token).
    """

    text: str
    starts: list[int]
    ends: list[int]
    labels: list[int]
    steps: list[int]
    sources: list[int]
    eot: list[int] = field(default_factory=list)
    turn_ends: list[int] = field(default_factory=list)


@dataclass
class ExampleStats:
    """What happened while building one example (counted by ``sad mask-check``)."""

    n_tokens: int = 0            # tokens kept (after truncation)
    n_tokens_full: int = 0       # tokens before truncation
    straddling: int = 0          # tokens whose characters come from two or more spans
    truncated_reason: int = 0    # reasoning tokens cut by --max-length
    truncated_act: int = 0       # action tokens cut by --max-length
    truncated_tokens: int = 0    # all tokens cut
    empty_spans: list[int] = field(default_factory=list)  # record span indices with text but no token
    # step windows (``window="steps"``; record-level counts sit on the record's first window)
    windows: int = 1             # training examples the record became
    context_tokens: int = 0      # unsupervised context tokens of earlier steps in this example
    split_steps: int = 0         # steps longer than the window budget, split at token boundaries
    head_cut: int = 0            # prompt tokens left out of every window (a prompt over half of max_length)

    def to_dict(self) -> dict:
        return {f: (list(getattr(self, f)) if f == "empty_spans" else getattr(self, f))
                for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict | None) -> ExampleStats:
        d = d or {}
        return cls(**{k: (list(v) if k == "empty_spans" else int(v)) for k, v in d.items()
                      if k in cls.__dataclass_fields__})


@dataclass
class Alignment:
    """Token <-> character bookkeeping kept for audits and previews (``keep_alignment=True``).

    Arrays cover the full, untruncated encoding; ``kept`` is the ``(lo, hi)`` slice that survived
    truncation. ``token_span[i]`` is the index into ``rendered``'s spans (-1: a special token added
    by the tokenizer with no characters).
    """

    rendered: Rendered
    ids: Any              # numpy int64 [N_full]
    offsets: Any          # numpy int64 [N_full, 2]
    token_span: Any       # numpy int64 [N_full]
    straddle: list[int]   # token indices (full encoding) that straddle a span boundary
    kept: tuple[int, int]
    positions: Any = None  # step windows: numpy int64 [n] positions of the example's tokens in the full encoding

    def index(self) -> Any:
        """Positions (in the full encoding) of the example's tokens, in order: numpy int64 ``[n]``."""
        import numpy as np

        return self.positions if self.positions is not None else np.arange(self.kept[0], self.kept[1])


@dataclass
class Window:
    """Where one step window of a long trajectory comes from (positions in the full encoding).

    The example's tokens are ``head`` (the task prompt) + ``context`` (whole earlier steps, not
    supervised) + ``target`` (the steps this window supervises). Over a record's windows the
    ``target`` ranges tile ``[head end, N)``: every reasoning/action token is supervised exactly once.
    """

    index: int                   # 0-based window number within the record
    count: int                   # windows of the record
    head: tuple[int, int]
    context: tuple[int, int]
    target: tuple[int, int]
    split: bool = False          # the target is a piece of a step longer than the window budget

    def positions(self) -> Any:
        import numpy as np

        return np.concatenate([np.arange(*self.head), np.arange(self.context[0], self.target[1])]).astype(np.int64)

    def to_dict(self) -> dict:
        return {"index": self.index, "count": self.count, "head": list(self.head), "context": list(self.context),
                "target": list(self.target), "split": self.split}

    @classmethod
    def from_dict(cls, d: dict) -> Window:
        return cls(int(d["index"]), int(d["count"]), tuple(d["head"]), tuple(d["context"]),  # type: ignore[arg-type]
                   tuple(d["target"]), bool(d.get("split", False)))  # type: ignore[arg-type]


@dataclass
class MaskedExample:
    """One trajectory, tokenized and labeled.

    ``token_labels``: PROMPT=0, REASON=1, ACT=2, OBS=3 per token (m_r = label==1, m_a = label==2,
    m_o = label in {0, 3}). ``labels``: ``input_ids`` at REASON/ACT tokens, -100 elsewhere.
    """

    id: str
    input_ids: list[int]
    attention_mask: list[int]
    token_labels: list[int]
    labels: list[int]
    stats: ExampleStats = field(default_factory=ExampleStats)
    index: int = 0                       # position in the input stream
    extra: dict = field(default_factory=dict)   # fields carried from the record (task, success, reward...)
    alignment: Alignment | None = None
    window: Window | None = None         # set when the record was cut into step windows

    def __len__(self) -> int:
        return len(self.input_ids)


def supervised_labels(input_ids: list[int], token_labels: list[int]) -> list[int]:
    """``labels`` for a causal LM: the token id where supervised (REASON/ACT), -100 elsewhere."""
    return [t if lab == REASON or lab == ACT else IGNORE_INDEX for t, lab in zip(input_ids, token_labels, strict=False)]
