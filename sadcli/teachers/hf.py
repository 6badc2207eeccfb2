"""``hf:<model spec>``: a local transformers causal LM as a ReAct teacher, batched over episodes.

The model comes from :func:`sadcli.models.spec.load_model` (so ``hf:smollm2-135m``, the embedded model,
works offline). Every round, the prompts of *all* active episodes are left-padded into one batch and
decoded together with a KV cache; a sequence leaves the batch as soon as it writes one of the
environment's stop sequences (``\\nObservation:``...) or end-of-sequence, or at ``max_new_tokens``.
Greedy by default (the same tokens as ``model.generate``); ``temperature > 0`` samples (with
``top_p`` / ``top_k``).

``expert+rationalize:<spec>`` (:class:`RationalizeTeacher`) lets the expert choose the action and the
model write the Thought that leads to it.

torch and transformers are imported when a teacher is built, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.envs.base import split_react


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


class HFGenerator:
    """Batched, left-padded generation with per-sequence stop strings."""

    def __init__(self, spec: str, opts: GenOptions):
        import torch

        from sadcli.models.spec import load_model, load_tokenizer

        self.torch = torch
        self.opts = opts
        self.tok = load_tokenizer(spec)
        self.model = load_model(spec, dtype=opts.dtype, device=opts.device)
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

    def chat_prompt(self, messages: list[dict], prefix: str) -> str:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prefix

    def generate(self, prompts: list[str], stops: list[str]) -> list[str]:
        bs = self.opts.batch_size or len(prompts)
        out: list[str] = []
        for i in range(0, len(prompts), bs):
            out.extend(self._generate(prompts[i:i + bs], stops))
        return out

    def _generate(self, prompts: list[str], stops: list[str]) -> list[str]:
        """Greedy or sampled decoding of a left-padded batch with a KV cache.

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
                    if stops:
                        tail = self.tok.decode(tokens[row][-12:], skip_special_tokens=True)
                        if any(s_ in tail for s_ in stops):
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


class HFTeacher:
    """The model writes ``Thought: ... Action: ...`` for every active episode, in one batch."""

    def __init__(self, spec: str, options: GenOptions | None = None, **kw):
        self.spec = spec
        self.opts = options or _opts(kw)
        self.gen = HFGenerator(spec, self.opts)
        self.name = f"hf:{spec}"

    def prompt(self, st: EpisodeState) -> str:
        p = st.prompt
        if self.gen.use_chat:
            return self.gen.chat_prompt(p.messages(st.task_text, st.steps, examples=self.opts.examples),
                                        p.thought.rstrip(" "))
        return p.render(st.task_text, st.steps, examples=self.opts.examples)

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        if not states:
            return []
        stops = list(dict.fromkeys(list(states[0].prompt.stop) + list(self.opts.stop)))
        texts = self.gen.generate([self.prompt(s) for s in states], stops)
        out = []
        for t in texts:
            reason, action = split_react(t)
            if action is None:  # no "Action:" line: the output is sent as the action (an invalid one)
                out.append(Decision(t.strip().split("\n", 1)[0], reason=None, raw=t))
            else:
                out.append(Decision(action, reason=reason, raw=t))
        return out


class RationalizeTeacher:
    """``expert+rationalize:<spec>``: expert actions, model-written reasoning for each of them."""

    def __init__(self, spec: str, options: GenOptions | None = None, **kw):
        self.spec = spec
        self.opts = options or _opts(kw)
        self.gen = HFGenerator(spec, self.opts)
        self.name = f"expert+rationalize:{spec}"

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
