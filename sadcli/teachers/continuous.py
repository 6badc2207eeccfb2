"""Token-level continuous batching of a causal LM's decoding: the model side of :mod:`sadcli.agent.scheduler`.

A :class:`RowBatch` holds the rows that decode together, one per episode that is writing its next step.
Rows join and leave *between two decode steps*, not between rounds of the agent loop::

    batch = RowBatch(generator, stops=["\\nObservation:"])
    batch.add("ep1", prompt1, holder1)          # queued; prefilled at the next step()
    while len(batch):
        for key, text, n_tokens in batch.step():  # one token for every row; the rows that finished
            ...                                   # -> environment; later batch.add(key, next_prompt, holder)

``step()`` does, in order:

1. **Prefill the queued rows**, each alone (a prefill is compute-bound: padding rows to a common length
   would cost as much as real tokens). A row feeds only the tokens after the longest common token prefix
   of its prompt and the keys/values its episode kept from its previous step (``holder``, the episode's
   ``EpisodeState.scratch``), or of the prefix all episodes share (instruction, few-shot examples; see
   :class:`sadcli.teachers.hf.HFGenerator`). The prefill's last logits give the row's first new token.
2. **Rebuild the batch's KV buffer** when rows joined or left: every row right-aligned in one
   ``[rows, kv_heads, width, head_dim]`` buffer per layer (the attention mask hides the left padding,
   position ids count only real tokens), so each row computes what it would alone. Rows already in the
   batch move with one slice copy per layer.
3. **One decode forward** for all rows: each feeds the token it picked last.
4. **Rows that are done leave**: a stop string, the end-of-sequence token, the end of the line after
   ``after`` (an action marker such as ``[ACT]``), or ``max_new_tokens``. A leaving row's keys/values (its
   real positions) go to its ``holder`` for its episode's next step, and ``step()`` returns its text (cut
   at the stop string) and its generated-token count.

Greedy decoding gives each row the tokens it gets decoded alone (up to last-bit differences of batched
matrix products, which can flip an exact argmax tie); ``temperature > 0`` samples with the generator's
seeded random stream (the draws then depend on which rows share a step).

Only models whose layers are all full attention are supported (:func:`supports`); the others take the
round-by-round path of :meth:`HFGenerator.generate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.teachers.kv_cache import batch_cache, extract, is_batch_cache

_CACHE_KEY = "hf_kv_cache"  # the same key as sadcli.teachers.hf: both paths share an episode's cache
_IDLE_STEPS = 4   # a free row left unused this many decode steps is dropped (a rebuild)
_SLACK = 64       # left padding columns kept at a rebuild, so that longer rows can join in place


def supports(gen) -> bool:
    """Whether ``gen`` (an :class:`HFGenerator`) can decode rows continuously."""
    return bool(gen._full_attention)


@dataclass
class _Row:
    key: Any
    holder: dict | None
    fed: list[int]                          # the tokens whose keys/values the cache holds, in order
    out: list[int] = field(default_factory=list)  # generated tokens (the last one is not fed yet)
    own: Any = None                          # a one-row cache from the prefill, until the next rebuild


class RowBatch:
    """Rows of one generator that decode together; see the module docstring for the loop."""

    def __init__(self, gen, stops: list[str], after: str | None = None):
        self.gen = gen
        self.stops = [s for s in stops if s]
        self.after = after
        self.rows: list[_Row | None] = []  # the rows of the KV buffer, in buffer order (None: a free row)
        self.cache = None               # the buffer: a Cache of BufferLayers, ``width`` columns filled
        self.mask = None                # [rows, width] attention mask (1 = a real position)
        self.queue: list[tuple[Any, str, dict | None]] = []
        self._idle = 0                  # decode steps run with a free row
        self.forwards = 0               # decode forwards run (for benchmarks)
        self.rebuilds = 0

    def __len__(self) -> int:
        return sum(r is not None for r in self.rows) + len(self.queue)

    def add(self, key: Any, prompt: str, holder: dict | None = None) -> None:
        """Queue a row: ``prompt`` continues at the next :meth:`step`."""
        self.queue.append((key, prompt, holder))

    # --- one step -----------------------------------------------------------------------------
    def step(self) -> list[tuple[Any, str, int]]:
        """Prefill the queued rows, decode one token for every row; return the rows that finished as
        ``(key, text, generated_tokens)``."""
        torch, gen = self.gen.torch, self.gen
        finished: list[tuple[Any, str, int]] = []
        with torch.inference_mode():
            joined = []
            if self.queue:
                queue, self.queue = self.queue, []
                for row, first in self._prefill(queue):
                    if self._take(row, first):
                        self._leave(row, row.own, 0, finished)
                    else:
                        joined.append(row)
            self._place(joined)
            live = [j for j, r in enumerate(self.rows) if r is not None]
            if not live:
                return finished
            pad = gen.tok.pad_token_id
            nxt = torch.tensor([r.out[-1] if r is not None else pad for r in self.rows], dtype=torch.long,
                               device=gen.device)
            for j in live:
                self.rows[j].fed.append(self.rows[j].out[-1])
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
            pos = self.mask.sum(-1, keepdim=True) - 1
            out = gen._forward(nxt[:, None], self.mask, pos, self.cache)
            self.forwards += 1
            logits = out.logits[:, -1, :]
            picks = gen._pick(logits if len(live) == len(self.rows) else logits[live]).tolist()
            for j, t in zip(live, picks, strict=True):
                r = self.rows[j]
                if self._take(r, int(t)):
                    self._leave(r, self.cache, j, finished)
                    self.rows[j] = None  # a free row: the next row to join takes it in place
            self._idle = self._idle + 1 if any(r is None for r in self.rows) else 0
        return finished

    def _place(self, joined: list[_Row]) -> None:
        """Put the rows that joined into the KV buffer: into free rows in place (a copy of their own keys/
        values only) when they fit the buffer's width, else by rebuilding the buffer. A buffer that kept free
        rows for a few steps, or whose width is mostly padding, is rebuilt without them."""
        free = [j for j, r in enumerate(self.rows) if r is None]
        width = self.mask.shape[1] if self.mask is not None else 0
        if len(joined) > len(free) or any(len(r.fed) > width for r in joined):
            self._rebuild(joined)
            return
        for j, r in zip(free, joined, strict=False):
            n = len(r.fed)
            for layer, own in zip(self.cache.layers, r.own.layers, strict=True):
                layer.kbuf[j, :, width - n:width] = own.kbuf[0, :, :n]
                layer.vbuf[j, :, width - n:width] = own.vbuf[0, :, :n]
            self.mask[j] = 0
            self.mask[j, width - n:] = 1
            r.own = None
            self.rows[j] = r
        live = [len(r.fed) for r in self.rows if r is not None]
        if self.rows and (not live or self._idle >= _IDLE_STEPS or width > 2 * max(live) + _SLACK):
            self._rebuild([])

    def _rebuild(self, joined: list[_Row]) -> None:
        """One right-aligned KV buffer for the rows that stay and the rows that joined (free rows dropped),
        with ``_SLACK`` columns of left padding so that longer rows can join in place later."""
        torch, gen = self.gen.torch, self.gen
        stay = [(j, r) for j, r in enumerate(self.rows) if r is not None]
        rows = [r for _, r in stay] + joined
        self._idle = 0
        if not rows:
            self.rows, self.cache, self.mask = [], None, None
            return
        width = max(len(r.fed) for r in rows) + _SLACK
        cache = batch_cache(gen.model.config, len(rows), width + gen.opts.max_new_tokens + 1, gen._dtype,
                            gen.device, [(0, None)] * len(rows), width)
        if stay:
            idx = torch.tensor([j for j, _ in stay], device=gen.device)
            old_w = self.mask.shape[1]
            w = min(width, old_w)  # every staying row fits in the last w columns of the old buffer
            for new, old in zip(cache.layers, self.cache.layers, strict=True):
                new.kbuf[:len(stay), :, width - w:width] = old.kbuf[:, :, old_w - w:old_w].index_select(0, idx)
                new.vbuf[:len(stay), :, width - w:width] = old.vbuf[:, :, old_w - w:old_w].index_select(0, idx)
        for j, r in enumerate(joined, start=len(stay)):
            n = len(r.fed)
            for new, own in zip(cache.layers, r.own.layers, strict=True):
                new.kbuf[j, :, width - n:width] = own.kbuf[0, :, :n]
                new.vbuf[j, :, width - n:width] = own.vbuf[0, :, :n]
            r.own = None
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=gen.device)
        for j, r in enumerate(rows):
            mask[j, width - len(r.fed):] = 1
        self.rows, self.cache, self.mask = rows, cache, mask
        self.rebuilds += 1

    def _take(self, row: _Row, t: int) -> bool:
        """Record the picked token ``t`` of ``row``; whether the row is done."""
        if t in self.gen.eos_ids:
            return True
        row.out.append(t)
        return len(row.out) >= self.gen.opts.max_new_tokens or self.gen._stopped(row.out, t, self.stops, self.after)

    def _leave(self, row: _Row, cache, j: int, finished: list) -> None:
        """Save the row's keys/values for its episode's next step; report its output."""
        gen = self.gen
        if row.holder is not None and gen.opts.prefix_cache:
            if is_batch_cache(cache):
                if cache is row.own:
                    positions = gen.torch.arange(len(row.fed), device=gen.device)
                else:
                    positions = self.mask[j].nonzero().squeeze(-1)
                row.holder[_CACHE_KEY] = extract(cache, j, positions, row.fed, id(gen))
            else:
                row.holder.pop(_CACHE_KEY, None)
        text = gen.tok.decode(row.out, skip_special_tokens=True)
        from sadcli.teachers.hf import cut_at_stop

        finished.append((row.key, cut_at_stop(text, self.stops), len(row.out)))

    def _prefill(self, queue: list[tuple[Any, str, dict | None]]) -> list[tuple[_Row, int]]:
        """Feed each queued prompt's new tokens against its kept cache (alone); its first new token."""
        torch, gen = self.gen.torch, self.gen
        ids = [gen.encode(p) for _, p, _ in queue]
        holders = [h for _, _, h in queue]
        gen._prime_shared(ids, holders)
        out = []
        for (key, _, holder), x in zip(queue, ids, strict=True):
            n, src = gen._reuse(x, holder)
            cache = batch_cache(gen.model.config, 1, len(x) + gen.opts.max_new_tokens + 1, gen._dtype,
                                gen.device, [(n, src)], n)
            new = torch.tensor([x[n:]], dtype=torch.long, device=gen.device)
            mask = torch.ones((1, len(x)), dtype=torch.long, device=gen.device)
            pos = torch.arange(n, len(x), device=gen.device)[None]
            res = gen._forward(new, mask, pos, cache, logits_to_keep=1)
            cache = gen._cache_of(res)
            gen._update_shared(cache, mask, [x], [(n, src)], [holder])
            first = int(gen._pick(res.logits[:, -1, :])[0])
            out.append((_Row(key, holder, list(x), own=cache), first))
        return out


class DecisionRows:
    """A :class:`RowBatch` as a :class:`sadcli.agent.scheduler.DecisionStream`: episodes in, decisions out.

    ``prompt(st)`` gives an episode's next prompt, or a :class:`Decision` when there is none to decode
    (e.g. a context overflow); ``decide(text, n_tokens)`` turns a finished row into a :class:`Decision`.
    """

    def __init__(self, batch: RowBatch, prompt: Callable[[EpisodeState], str | Decision],
                 decide: Callable[[str, int], Decision]):
        self.batch, self.prompt, self.decide = batch, prompt, decide
        self._ready: list[tuple[Any, Decision]] = []

    def __len__(self) -> int:
        return len(self.batch) + len(self._ready)

    def add(self, key: Any, st: EpisodeState) -> None:
        p = self.prompt(st)
        if isinstance(p, Decision):
            self._ready.append((key, p))
        else:
            self.batch.add(key, p, st.scratch)

    def step(self) -> list[tuple[Any, Decision]]:
        out, self._ready = self._ready, []
        if len(self.batch):
            out += [(key, self.decide(text, n)) for key, text, n in self.batch.step()]
        return out
