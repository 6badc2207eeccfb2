"""``hf:<model spec>``: a local transformers causal LM as a ReAct teacher, batched over episodes.

The model comes from :func:`sadcli.models.spec.load_model` (so ``hf:smollm2-135m``, the embedded model,
works offline). Every round, the prompts of *all* active episodes are decoded together in one batch
with a KV cache; a sequence leaves the batch as soon as it writes one of the environment's stop
sequences (``\\nObservation:``...) or end-of-sequence, or at ``max_new_tokens``. Greedy by default
(the same tokens as ``model.generate``); ``temperature > 0`` samples (with ``top_p`` / ``top_k``).

Prefix caching (``prefix_cache=True``, the default): each episode keeps its KV cache between steps (in
``EpisodeState.scratch``, so it goes away with the episode) and the next step feeds only the tokens
after the longest common token prefix of the cached ids and the new prompt; the prefix shared by
all prompts (instruction, few-shot examples) is computed once. See :mod:`sadcli.teachers.kv_cache`.

``expert+rationalize:<spec>`` (:class:`RationalizeTeacher`) lets the expert choose the action and the
model write the Thought that leads to it.

torch and transformers are imported when a teacher is built, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.envs.base import split_react
from sadcli.teachers.kv_cache import (
    PrefixEntry,
    batch_cache,
    common_prefix,
    extract,
    full_attention_only,
    is_batch_cache,
    row_cache,
    set_length,
)

_CACHE_KEY = "hf_kv_cache"
_MIN_SHARED = 8  # a shared prefix shorter than this is replaced, not shrunk


@dataclass
class GenOptions:
    max_new_tokens: int = 96
    temperature: float = 0.0          # 0: greedy
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()        # extra stop sequences (the environment's are always used)
    examples: bool = True             # include the environment's few-shot examples
    chat: str = "auto"                # auto | yes | no: use the tokenizer's chat template
    max_prompt_tokens: int = 2048     # longer prompts keep their end (the latest steps)
    batch_size: int = 0               # 0: all active episodes in one batch
    device: str | None = None
    dtype: str | None = None
    seed: int = 0
    prefix_cache: bool = True         # keep each episode's KV cache between steps, share the common prefix
    continuous: bool = True           # rows join/leave the decode batch between tokens (sadcli.agent.scheduler)


class HFGenerator:
    """Batched, left-padded generation with per-sequence stop strings."""

    def __init__(self, spec: str, opts: GenOptions, *, model=None, tokenizer=None):
        """Load ``spec``; or use a ``model`` / ``tokenizer`` already in memory (``sad eval``'s layer-cut
        student before distillation), ``spec`` then only names them."""
        import torch

        from sadcli.models.spec import load_model, load_tokenizer

        self.torch = torch
        self.opts = opts
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(spec)
        if model is None:
            model = load_model(spec, dtype=opts.dtype, device=opts.device)
        elif opts.device:
            model = model.to(opts.device)
        self.model = model.eval()
        self.device = next(self.model.parameters()).device
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "left"
        self.use_chat = opts.chat == "yes" or (opts.chat == "auto" and bool(getattr(self.tok, "chat_template", None)))
        self._gen = torch.Generator(device="cpu").manual_seed(opts.seed)
        torch.manual_seed(opts.seed)
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in [*eos, self.tok.eos_token_id] if e is not None}
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._dtype = next(self.model.parameters()).dtype
        if self.device.type == "cpu":
            gemm_friendly_layout(self.model)
        self._shared: PrefixEntry | None = None  # keys/values of the prefix all prompts share
        self._counts: list[int] = []
        self.last_counts: list[int] = []  # tokens generated per prompt in the last generate() call
        self._full_attention = full_attention_only(self.model.config)

    def chat_prompt(self, messages: list[dict], prefix: str) -> str:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prefix

    def generate(self, prompts: list[str], stops: list[str], holders: list[dict | None] | None = None,
                 after: str | None = None) -> list[str]:
        """Continue every prompt until a stop string, end-of-sequence or ``max_new_tokens``.

        ``after`` (optional) is a marker such as ``[ACT]``: a row also stops at the end of the line that
        follows it (the action line of a ``[REASON] ...\n[ACT] ...\n`` turn). ``last_counts`` holds
        the number of tokens generated for each prompt of the last call.

        ``holders[i]`` (optional) is a dict that lives as long as prompt ``i``'s episode (the policy gives
        ``EpisodeState.scratch``): the episode's KV cache is kept there between calls, so the next step
        feeds only the tokens its prompt adds. The cache goes away with the episode.
        """
        bs = self.opts.batch_size or len(prompts)
        holders = list(holders) if holders is not None else [None] * len(prompts)
        out: list[str] = []
        counts: list[int] = []
        for i in range(0, len(prompts), bs):
            extra = {"after": after} if after else {}
            out.extend(self._generate(prompts[i:i + bs], stops, holders[i:i + bs], **extra))
            counts.extend(self._counts)
        self.last_counts = counts
        return out

    def _stopped(self, row: list[int], t: int, stops: list[str], after: str | None) -> bool:
        """Whether a row that has just written token ``t`` (already in ``row``) is done."""
        if stops:
            tail = self.tok.decode(row[-12:], skip_special_tokens=True)
            if any(s_ in tail for s_ in stops):
                return True
        if after and "\n" in self.tok.decode([t], skip_special_tokens=True):
            text = self.tok.decode(row, skip_special_tokens=True)
            k = text.find(after)
            return k != -1 and "\n" in text[k + len(after):]
        return False

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids as the model sees them (special tokens, left truncation)."""
        self.tok.truncation_side = "left"
        return list(self.tok(prompt, truncation=True, max_length=self.opts.max_prompt_tokens,
                             add_special_tokens=not self.use_chat)["input_ids"])

    def _reuse(self, ids: list[int], holder: dict | None) -> tuple[int, PrefixEntry | None]:
        """How many leading tokens of ``ids`` already have keys/values, and where (episode or shared)."""
        if not self.opts.prefix_cache:
            return 0, None
        best, src = 0, None
        own = holder.get(_CACHE_KEY) if holder is not None else None
        if own is not None and own.owner == id(self):
            best, src = common_prefix(own.ids, ids), own
        if self._shared is not None:
            n = common_prefix(self._shared.ids, ids)
            if n > best:
                best, src = n, self._shared
        best = min(best, len(ids) - 1)  # feed at least one token: its logits give the first new token
        return (best, src) if best > 0 else (0, None)

    def _generate(self, prompts: list[str], stops: list[str], holders: list[dict | None] | None = None,
                  after: str | None = None) -> list[str]:
        """Greedy or sampled decoding of a batch with a KV cache.

        Row ``j``'s cache holds the reused prefix of its prompt (from its episode's previous step, or the
        prefix shared by all episodes: the instruction and few-shot examples), left-padded to the
        longest; the rest of the prompts is fed as one left-padded chunk, then decoded token by token.
        The attention mask hides the padding and the position ids count only real tokens, so each row
        computes what it would alone. A row leaves the batch as soon as it has written a stop string or
        the end-of-sequence token (its cache rows are dropped, after being saved for the episode's next
        step), so the batch never pays for sequences that are done — unlike ``model.generate``, which
        keeps computing finished rows until the longest one ends.
        """
        if not self._full_attention:
            return self._generate_plain(prompts, stops, after)
        torch, o = self.torch, self.opts
        holders = list(holders) if holders is not None else [None] * len(prompts)
        ids = [self.encode(p) for p in prompts]
        self._prime_shared(ids, holders)
        reuse = [self._reuse(x, h) for x, h in zip(ids, holders, strict=True)]
        width = max(n for n, _ in reuse)
        new = [x[n:] for x, (n, _) in zip(ids, reuse, strict=True)]
        chunk = max(len(x) for x in new)
        b = len(prompts)
        pad = self.tok.pad_token_id
        # Rows of very different lengths are prefilled one by one (a prefill is compute-bound: padding
        # would cost as much as real tokens); similar ones in one left-padded chunk.
        rowwise = b > 1 and sum(len(x) for x in new) < 0.8 * b * chunk
        inp = torch.full((b, chunk), pad, dtype=torch.long)
        mask = torch.zeros((b, width + chunk), dtype=torch.long)
        for j, ((n, _), x) in enumerate(zip(reuse, new, strict=True)):
            mask[j, width - n: width] = 1
            if rowwise:  # this row's tokens right after its cached ones; the hole after them is masked
                mask[j, width: width + len(x)] = 1
            else:
                inp[j, chunk - len(x):] = torch.tensor(x, dtype=torch.long)
                mask[j, width + chunk - len(x):] = 1
        inp, mask = inp.to(self.device), mask.to(self.device)
        stops = [s for s in stops if s]
        tokens: list[list[int]] = [[] for _ in prompts]
        fed: list[list[int]] = [list(x) for x in ids]  # the tokens each row's cache holds
        active = list(range(b))
        with torch.inference_mode():
            cache = batch_cache(self.model.config, b, width + chunk + o.max_new_tokens + 1, self._dtype,
                                self.device, reuse, width)
            if rowwise:
                rows = []
                for j, ((n, _), x) in enumerate(zip(reuse, new, strict=True)):
                    xj = torch.tensor([x], dtype=torch.long, device=self.device)
                    pj = torch.arange(n, n + len(x), device=self.device)[None]
                    out = self._forward(xj, mask[j:j + 1, :width + len(x)], pj, row_cache(cache, j), logits_to_keep=1)
                    rows.append(out.logits[:, -1, :])
                set_length(cache, width + chunk)
                logits = torch.cat(rows)
            else:
                pos = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, width:]
                out = self._forward(inp, mask, pos, cache, logits_to_keep=1)
                cache = self._cache_of(out)
                logits = out.logits[:, -1, :]
            self._update_shared(cache, mask, ids, reuse, holders)
            for step in range(o.max_new_tokens):
                nxt = self._pick(logits)
                keep = []
                for j, row in enumerate(active):
                    t = int(nxt[j])
                    done = t in self.eos_ids
                    if not done:
                        tokens[row].append(t)
                        done = self._stopped(tokens[row], t, stops, after)
                    if done or step == o.max_new_tokens - 1:
                        self._save(cache, mask, j, fed[row], holders[row])
                    else:
                        keep.append(j)
                if not keep:
                    break
                if len(keep) < len(active):
                    idx = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(idx)
                    mask, nxt = mask[idx], nxt[idx]
                    active = [active[j] for j in keep]
                for j, row in enumerate(active):
                    fed[row].append(int(nxt[j]))
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                pos = mask.long().sum(-1, keepdim=True) - 1
                out = self._forward(nxt[:, None], mask, pos, cache)
                cache = self._cache_of(out)
                logits = out.logits[:, -1, :]
        self._counts = [len(t) for t in tokens]
        texts = [self.tok.decode(t, skip_special_tokens=True) for t in tokens]
        return [cut_at_stop(t, stops) for t in texts]

    def _save(self, cache, mask, j: int, fed: list[int], holder: dict | None) -> None:
        """Keep row ``j``'s keys/values (its unpadded positions) for its episode's next step."""
        if holder is None or not self.opts.prefix_cache:
            return
        if not is_batch_cache(cache):  # a model that replaced the cache object: nothing to keep
            holder.pop(_CACHE_KEY, None)
            return
        positions = mask[j].nonzero().squeeze(-1)
        if positions.numel() != len(fed):
            holder.pop(_CACHE_KEY, None)
            return
        holder[_CACHE_KEY] = extract(cache, j, positions, fed, id(self))

    def _prime_shared(self, ids: list[list[int]], holders: list[dict | None]) -> None:
        """Several episodes start in this batch: compute the prefix their prompts share once, up front."""
        if not self.opts.prefix_cache:
            return
        fresh = [x for x, h in zip(ids, holders, strict=True)
                 if h is None or getattr(h.get(_CACHE_KEY), "owner", None) != id(self)]
        if len(fresh) < 2:
            return
        n = min(min(common_prefix(fresh[0], x) for x in fresh[1:]), min(len(x) for x in fresh) - 1)
        have = common_prefix(self._shared.ids, fresh[0]) if self._shared is not None else 0
        if n < _MIN_SHARED or n <= have:
            return
        torch = self.torch
        x = torch.tensor([fresh[0][:n]], dtype=torch.long, device=self.device)
        mask = torch.ones_like(x)
        with torch.inference_mode():
            cache = batch_cache(self.model.config, 1, n, self._dtype, self.device, [(0, None)], 0)
            out = self._forward(x, mask, torch.arange(n, device=self.device)[None], cache, logits_to_keep=1)
            cache = self._cache_of(out)
            if is_batch_cache(cache):
                self._shared = extract(cache, 0, torch.arange(n, device=self.device), fresh[0][:n], id(self))

    def _update_shared(self, cache, mask, ids, reuse, holders) -> None:
        """The prefix common to all episodes' prompts (instruction, few-shot examples), computed once.

        The first prompt's keys/values are kept; every later prompt that starts a new episode shrinks
        the kept prefix to what they have in common (or replaces it when they share almost nothing:
        another template).
        """
        if not self.opts.prefix_cache or not is_batch_cache(cache):
            return
        for j, x in enumerate(ids):
            h = holders[j]
            own = h.get(_CACHE_KEY) if h is not None else None
            if own is not None and own.owner == id(self):
                continue  # a running episode, not a new one
            if self._shared is not None:
                n = common_prefix(self._shared.ids, x)
                if n >= _MIN_SHARED:
                    if n < len(self._shared.ids):
                        self._shared = self._shared.cropped(n)
                    continue
            positions = mask[j].nonzero().squeeze(-1)
            if positions.numel() == len(x):
                self._shared = extract(cache, j, positions, x, id(self))

    def _generate_plain(self, prompts: list[str], stops: list[str], after: str | None = None) -> list[str]:
        """The same without kept caches, for models with other than full-attention layers (sliding
        windows, linear attention), whose cache layers :mod:`sadcli.teachers.kv_cache` does not model.

        A row leaves the batch as soon as it has written a stop string or the end-of-sequence token
        (its cache rows are dropped), so the batch never pays for sequences that are done — unlike
        ``model.generate``, which keeps computing finished rows until the longest one ends.
        """
        torch, o = self.torch, self.opts
        self.tok.truncation_side = "left"
        enc = self.tok(prompts, return_tensors="pt", padding=True, truncation=True,
                       max_length=o.max_prompt_tokens, add_special_tokens=not self.use_chat)
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        stops = [s for s in stops if s]
        tokens: list[list[int]] = [[] for _ in prompts]
        active = list(range(len(prompts)))
        with torch.inference_mode():
            pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
            out = self._forward(ids, mask, pos, None, logits_to_keep=1)
            cache = self._cache_of(out)
            logits = out.logits[:, -1, :]
            for step in range(o.max_new_tokens):
                nxt = self._pick(logits)
                keep = []
                for j, row in enumerate(active):
                    t = int(nxt[j])
                    if t in self.eos_ids:
                        continue
                    tokens[row].append(t)
                    if self._stopped(tokens[row], t, stops, after):
                        continue
                    keep.append(j)
                if not keep or step == o.max_new_tokens - 1:
                    break
                if len(keep) < len(active):
                    idx = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(idx)
                    mask, nxt = mask[idx], nxt[idx]
                    active = [active[j] for j in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                pos = mask.long().sum(-1, keepdim=True) - 1
                out = self._forward(nxt[:, None], mask, pos, cache)
                cache = self._cache_of(out)
                logits = out.logits[:, -1, :]
        self._counts = [len(t) for t in tokens]
        texts = [self.tok.decode(t, skip_special_tokens=True) for t in tokens]
        return [cut_at_stop(t, stops) for t in texts]

    def _forward(self, ids, mask, pos, cache, **kw):
        if cache is not None:
            kw[self._cache_arg] = cache
        return self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kw)

    @staticmethod
    def _cache_of(out):
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def _pick(self, logits):
        """Next token per row: argmax, or a sample with temperature / top-k / top-p."""
        torch, o = self.torch, self.opts
        if not o.temperature or o.temperature <= 0:
            return logits.argmax(-1)
        logits = logits.float() / o.temperature
        if o.top_k and o.top_k > 0:
            kth = torch.topk(logits, min(o.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if o.top_p and o.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            probs = torch.softmax(sorted_logits, dim=-1)
            drop = probs.cumsum(-1) - probs > o.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs.cpu(), 1, generator=self._gen).squeeze(-1).to(logits.device)


def gemm_friendly_layout(model) -> None:
    """Store each ``nn.Linear`` weight ``[out, in]`` as the transpose of a contiguous ``[in, out]`` matrix.

    Same values and shapes, another memory layout: ``F.linear`` then runs a plain (non-transposed)
    GEMM, which the CPU BLAS does up to 2x faster for the few rows of a decode step (measured on
    this project's 2-core AVX-512 machine: the 49152x576 output layer takes 15 ms instead of 27 ms
    for 8 rows; never slower for 1 or 256 rows). Tied weights (output layer = embeddings) are
    re-laid once.
    """
    import torch

    seen: set[int] = set()
    for mod in model.modules():
        w = getattr(mod, "weight", None)
        if isinstance(mod, torch.nn.Linear) and w is not None and w.dim() == 2 and id(w) not in seen:
            seen.add(id(w))
            if w.is_contiguous():
                w.data = w.data.t().contiguous().t()


def cut_at_stop(text: str, stops) -> str:
    cut = len(text)
    for s in stops:
        if s:
            j = text.find(s)
            if j != -1:
                cut = min(cut, j)
    return text[:cut]


def _opts(kw: dict) -> GenOptions:
    if "stop" in kw and isinstance(kw["stop"], str):
        kw["stop"] = tuple(s.encode().decode("unicode_escape") for s in kw["stop"].split("|") if s)
    return GenOptions(**kw)


class _ModelTeacher:
    """What the model teachers hold: the spec, the generation options and one batched generator."""

    kind = "hf"

    def __init__(self, spec: str, options: GenOptions | None = None, **kw):
        self.spec = spec
        self.opts = options or _opts(kw)
        self.gen = HFGenerator(spec, self.opts)
        self.name = f"{self.kind}:{spec}"


class HFTeacher(_ModelTeacher):
    """The model writes ``Thought: ... Action: ...`` for every active episode, in one batch."""

    def prompt(self, st: EpisodeState) -> str:
        p = st.prompt
        if self.gen.use_chat:
            return self.gen.chat_prompt(p.messages(st.task_text, st.steps, examples=self.opts.examples),
                                        p.thought.rstrip(" "))
        return p.render(st.task_text, st.steps, examples=self.opts.examples)

    def _stops(self, prompt) -> list[str]:
        return list(dict.fromkeys(list(prompt.stop) + list(self.opts.stop)))

    @staticmethod
    def decide(t: str, n: int) -> Decision:
        reason, action = split_react(t)
        if action is None:  # no "Action:" line: the output is sent as the action (an invalid one)
            return Decision(t.strip().split("\n", 1)[0], reason=None, raw=t, tokens=n, invalid_format=True)
        return Decision(action, reason=reason, raw=t, tokens=n)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        if not states:
            return []
        texts = self.gen.generate([self.prompt(s) for s in states], self._stops(states[0].prompt),
                                  [s.scratch for s in states])
        return [self.decide(t, n) for t, n in zip(texts, self.gen.last_counts, strict=False)]

    def stream(self):
        """Continuous batching (:mod:`sadcli.agent.scheduler`); None when ``continuous=false`` or the
        model has other than full-attention layers."""
        from sadcli.teachers.continuous import supports

        if not self.opts.continuous or not supports(self.gen):
            return None
        return _LazyStops(self)


class FormatTeacher(_ModelTeacher):
    """A ``sad distill`` output prompted in the format it was trained on (``DIR/sad_config.json``: render
    text/chat, markers paper/native; :class:`sadcli.sadformat.SadFormat`) instead of the environment's
    few-shot ReAct prompt — what ``sad eval`` does, so ``collect --teacher hf:DIR`` and ``sad eval --model DIR``
    write the same episodes. A row stops at the end of its action line (after the action marker), at the
    next observation marker or at end-of-turn.

    ``gen`` (optional) is a generator already built (``sad eval``'s layer-cut student before distillation).
    """

    def __init__(self, spec: str, fmt, options: GenOptions | None = None, *, gen: HFGenerator | None = None,
                 name: str | None = None, **kw):
        self.spec, self.fmt = spec, fmt
        self.opts = options or _opts(kw)
        self.opts.chat = "yes" if fmt.render == "chat" else "no"
        self.gen = gen or HFGenerator(spec, self.opts)
        self.name = name or f"{self.kind}:{spec}"
        self.context = int(getattr(self.gen.model.config, "max_position_embeddings", 0) or 4096)
        self.opts.max_prompt_tokens = min(self.opts.max_prompt_tokens, self.context)

    def prompt(self, st: EpisodeState) -> str | Decision:
        """The episode's next prompt, or a failed Decision when it leaves no room for the answer."""
        g = self.gen
        p = self.fmt.prompt(g.tok, st.prompt.instruction, st.task_text, st.steps)
        n = len(g.tok(p, add_special_tokens=not g.use_chat)["input_ids"])
        if n + self.opts.max_new_tokens > self.context:
            return Decision("", error=f"context_overflow: the prompt has {n} tokens; with "
                                      f"{self.opts.max_new_tokens} new ones it exceeds the model's {self.context}")
        return p

    def decide(self, t: str, n: int) -> Decision:
        reason, action = self.fmt.parse(t)
        if action is None:  # no action marker: the first line is sent as the action (an invalid one)
            return Decision(t.strip().split("\n", 1)[0].strip(), reason=None, raw=t, tokens=n, invalid_format=True)
        return Decision(action, reason=reason, raw=t, tokens=n)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        out: list[Decision | None] = [None] * len(states)
        prompts, todo = [], []
        for i, st in enumerate(states):
            p = self.prompt(st)
            if isinstance(p, Decision):
                out[i] = p
            else:
                prompts.append(p)
                todo.append(i)
        if todo:
            texts = self.gen.generate(prompts, self._stops(), [states[i].scratch for i in todo],
                                      after=self.fmt.act_marker)
            for i, t, n in zip(todo, texts, self.gen.last_counts, strict=True):
                out[i] = self.decide(t, n)
        return out  # type: ignore[return-value]

    def _stops(self) -> list[str]:
        return list(dict.fromkeys([*self.fmt.stops, *self.opts.stop]))

    def stream(self):
        """Continuous batching (:mod:`sadcli.agent.scheduler`), or None (rounds)."""
        from sadcli.teachers.continuous import DecisionRows, RowBatch, supports

        if not self.opts.continuous or not supports(self.gen):
            return None
        return DecisionRows(RowBatch(self.gen, self._stops(), after=self.fmt.act_marker), self.prompt, self.decide)


class _LazyStops:
    """HFTeacher's decision stream; its stop strings come from the first episode's prompt template."""

    def __init__(self, teacher: HFTeacher):
        self.teacher, self.rows = teacher, None

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else 0

    def add(self, key, st: EpisodeState) -> None:
        if self.rows is None:
            from sadcli.teachers.continuous import DecisionRows, RowBatch

            t = self.teacher
            self.rows = DecisionRows(RowBatch(t.gen, t._stops(st.prompt)), t.prompt, t.decide)
        self.rows.add(key, st)

    def step(self):
        return self.rows.step() if self.rows is not None else []


class RationalizeTeacher(_ModelTeacher):
    """``expert+rationalize:<spec>``: expert actions, model-written reasoning for each of them."""

    kind = "expert+rationalize"

    def prompt(self, st: EpisodeState, action: str) -> str:
        p = st.prompt
        hint = (f"The next action is known to be correct: {action}\n"
                f"Write one short Thought that explains, from the task and the observations so far, "
                f"why this is the right next action.")
        if self.gen.use_chat:
            msgs = p.messages(st.task_text, st.steps, examples=self.opts.examples)
            msgs.append({"role": "user", "content": hint})
            return self.gen.chat_prompt(msgs, p.thought.rstrip(" "))
        return p.render(st.task_text, st.steps, examples=self.opts.examples).rsplit(p.thought.rstrip(" "), 1)[0] \
            + f"({hint})\n" + p.thought.rstrip(" ")

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        out: list[Decision | None] = [None] * len(states)
        todo = []
        for i, st in enumerate(states):
            if not st.expert:
                out[i] = Decision("", error="the environment gave no expert action")
            else:
                todo.append(i)
        if todo:
            stops = ["\n", *self.opts.stop]
            texts = self.gen.generate([self.prompt(states[i], states[i].expert) for i in todo], stops)
            for i, t in zip(todo, texts, strict=False):
                reason = t.strip().removeprefix(":").strip()
                out[i] = Decision(states[i].expert, reason=reason or None, raw=t)
        return out  # type: ignore[return-value]
