"""Token-level previews (Rich, stderr) and span-length histograms (matplotlib)."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text

from sadcli.errors import SadError
from sadcli.labels import ACT, OBS, PROMPT, REASON
from sadcli.masks.types import MaskedExample

# two shades per kind: neighbouring tokens alternate, so every token boundary is visible
_STYLES = {
    PROMPT: ("grey50 on grey11", "grey50 on grey19"),
    REASON: ("bold white on dark_blue", "bold white on blue3"),
    ACT: ("bold black on green3", "bold black on spring_green2"),
    OBS: ("yellow on grey11", "yellow on grey23"),
}
_TAGS = {PROMPT: "prompt ·     ", REASON: "reason ✓ L_CoT", ACT: "act    ✓ L_Act", OBS: "obs    ·     "}
LEGEND = "✓ supervised (m_r: L_CoT, m_a: L_Act)   · unsupervised (m_o: prompt, chat template, observations)"


def token_strings(ex: MaskedExample, tokenizer: Any) -> list[str]:
    """What each kept token covers: its slice of the rendered text, or its vocabulary string."""
    a = ex.alignment
    out = []
    if a is not None:
        text = a.rendered.text
        for (s, e), tid in zip(a.offsets[a.index()].tolist(), ex.input_ids, strict=False):
            out.append(text[s:e] if e > s else tokenizer.convert_ids_to_tokens(int(tid)))
        return out
    return [tokenizer.decode([t]) for t in ex.input_ids]


def preview(ex: MaskedExample, tokenizer: Any, *, separators: bool = False) -> Text:
    """One example as runs of same-kind tokens, one run per line, tagged with the kind.

    Tokens alternate between two shades; with ``separators`` (no color) a ``│`` marks each boundary.
    Newlines inside tokens show as ``↵``.
    """
    toks = token_strings(ex, tokenizer)
    out = Text()
    out.append(f"── {ex.id}: {len(ex.input_ids)} tokens", style="bold")
    if ex.stats.truncated_tokens:
        out.append(f" ({ex.stats.truncated_tokens} cut by --max-length)", style="yellow")
    if ex.window is not None:
        w = ex.window
        out.append(f" (step window {w.index + 1}/{w.count}: prompt + {ex.stats.context_tokens} context tokens "
                   f"unsupervised, shown as prompt)", style="yellow")
    out.append("\n")
    prev = None
    shade = 0
    for tok, lab in zip(toks, ex.token_labels, strict=False):
        if lab != prev:
            if prev is not None:
                out.append("\n")
            out.append(f"{_TAGS.get(lab, str(lab))} │ ", style="dim" if lab in (PROMPT, OBS) else "bold")
            prev, shade = lab, 0
        elif separators:
            out.append("│", style="dim")
        shown = tok.replace("\n", "↵").replace("\t", "⇥")
        out.append(shown, style=_STYLES.get(lab, ("", ""))[shade])
        shade ^= 1
    out.append("\n")
    return out


def show(console: Any, ex: MaskedExample, tokenizer: Any) -> None:
    console.print(preview(ex, tokenizer, separators=not console.color_system), soft_wrap=True)


def plot_span_lengths(span_lengths: dict[str, list[int]], path: str, *, title: str = "") -> None:
    """Save histograms of reasoning and action span lengths (tokens) to ``path`` (atomically)."""
    try:
        import matplotlib
    except ImportError:
        raise SadError("--plot needs matplotlib", hint="pip install 'sad-distill[plot]' (or matplotlib)") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind, color in ((axes[0], "reason", "#3465a4"), (axes[1], "act", "#4e9a06")):
        data = span_lengths.get(kind) or []
        if data:
            ax.hist(data, bins=min(50, max(5, len(set(data)))), color=color)
        ax.set_title(f"{kind} spans (n={len(data)})")
        ax.set_xlabel("tokens per span")
        ax.set_ylabel("spans")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    import io

    from sadcli.fsutil import atomic_write_bytes

    ext = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = ext if ext in fig.canvas.get_supported_filetypes() else "png"
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=100, format=fmt)
    finally:
        plt.close(fig)
    # written in place to a FIFO/device, else temp file + rename (sadcli.fsutil)
    atomic_write_bytes(path, buf.getvalue(), what="--plot")

