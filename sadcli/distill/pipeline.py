"""``sad distill`` as a library call: data -> masks -> models -> (cache | train) -> saved student.

:func:`run` is what the command calls; :func:`prepare_data`, :func:`build_student`,
:func:`build_teacher_cache` are usable on their own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sadcli.console import console
from sadcli.distill.data import Curriculum, fingerprint_settings, read_curriculum
from sadcli.errors import InputError, SadError
from sadcli.labels import ACT, REASON


@dataclass
class DistillOptions:
    """Everything ``sad distill`` accepts (see the command's --help for each option)."""

    input: str
    output: str | None = None
    teacher: str = "smollm2-135m"
    student: str | None = None
    student_layers: str | None = "6"
    student_config: str | None = None
    layer_pick: str = "even"       # --student-layers N: even spacing, or block influence on the data
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "sad"})
    cache_teacher: str | None = None
    teacher_cache: str | None = None
    top_k: int = 64
    tail_samples: int | None = None  # None: teacher_cache.default_tail_samples(top_k)
    render: str = "text"
    max_length: int = 1024
    truncate: str = "start"
    window: str = "steps"          # longer records: step windows (steps) or one cut example (truncate/none)
    token_cache: str | None = None  # folder of the tokenization cache (None: build examples in memory)
    curriculum: str | None = None  # pacing: none|sorted|stages|competence (None: sorted when records carry it)
    c0: float = 0.1                # competence at step 0
    curriculum_steps: int = 0      # T (0: half the run; stages: the whole run)
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    log: str | None = None
    report_to: Sequence[str] = ()
    resume: bool = False
    trust_spans: bool = False  # records without ``steps``: train on spans that cannot be checked
    device: str | None = None
    quiet: bool = False
    dtype: str = "float32"
    fsdp: bool = False             # shard the student with FSDP2 over the processes (trainer module doc)
    on_log: Any = None  # callback(metrics dict) at every logging step (benchmarks, notebooks)


@dataclass
class Prepared:
    """Training examples built by the mask library, plus what the summary reports."""

    examples: list[Any]
    curriculum: Curriculum
    fingerprint: str
    source: str
    stats: dict[str, Any]
    markers: str | None = None  # the records' segment markers (paper / native), for sad_config.json
    settings: dict[str, Any] | None = None  # what the fingerprint hashes besides the examples

    def fingerprint_of(self, lo: int, hi: int) -> str | None:
        """The fingerprint examples ``lo:hi`` alone would have (one data shard's teacher cache)."""
        from sadcli.distill.teacher_cache import data_fingerprint

        if self.settings is None or hi > len(self.examples):
            return None
        return data_fingerprint((self.examples[i] for i in range(lo, hi)), **self.settings)


# --- data ------------------------------------------------------------------------------------

def _read(path: str) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    from sadcli.records import FIX_HINT, read_records

    records, where = [], []
    for line, rec in read_records(path, hint=FIX_HINT):  # distill has no --on-error
        records.append(rec)
        where.append((line.file, line.line))
    if not records:
        raise InputError(f"{path}: no records", hint="give segmented JSONL (sad segment FILE -o seg.jsonl)")
    return records, where


def _is_emitted(rec: dict[str, Any]) -> bool:
    return "input_ids" in rec and "token_labels" in rec


def _first_is_emitted(path: str) -> bool:
    """Whether the first record of ``path`` is a ``sad mask-check --emit`` line (False for no record)."""
    from sadcli.records import FIX_HINT, read_records

    for _, rec in read_records(path, hint=FIX_HINT):
        return _is_emitted(rec)
    return False


def prepare_data(path: str, tokenizer: Any, *, render: str = "text", max_length: int = 1024,
                 truncate: str = "start", trust_spans: bool = False, window: str = "steps",
                 token_cache: str | None = None) -> Prepared:
    """Read segmented JSONL or a dataset (or ``sad mask-check --emit`` output) and build masked examples.

    ``token_cache``: a folder (see :mod:`sadcli.distill.token_cache`): segmented records of a file or
    dataset are tokenized once, streamed to an Arrow cache there and memory-mapped (same examples, same
    fingerprint); None, stdin and ``--emit`` input build the examples in memory.

    Raises InputError for records without spans (with the hint to run ``sad segment``) and when no
    reasoning/action token survives truncation.
    """
    from sadcli.masks.build import build_examples

    if token_cache and path != "-" and not _first_is_emitted(path):
        from sadcli.distill.token_cache import prepare as prepare_cached

        b = prepare_cached(path, tokenizer, root=token_cache, render=render, max_length=max_length,
                           truncate=truncate, trust_spans=trust_spans, window=window,
                           fingerprint_settings=fingerprint_settings(render, max_length, truncate, window))
        console.print(f"token cache: {'hit' if b.hit else 'built'} {b.folder} ({len(b.examples)} examples)",
                      highlight=False, soft_wrap=True)
        return Prepared(b.examples, b.curriculum, b.fingerprint, path, b.stats, _markers_of_file(path),
                        fingerprint_settings(render, max_length, truncate, window))
    records, where = _read(path)
    emitted = _is_emitted(records[0])
    if emitted:
        examples = _fit_emitted(_from_emitted(records, where), where, max_length, truncate, len(tokenizer))
    else:
        for rec, (file, line) in zip(records, where, strict=False):
            if "spans" not in rec or "text" not in rec:
                raise InputError("record has no \"spans\" (not segmented)", file=file, line=line,
                                 hint=f"run `sad segment {path if path != '-' else 'FILE'}` first and train on "
                                      "its output")
        check_span_contents(records, where, trust_spans=trust_spans)

        def located(index: int, rec: dict, err: SadError) -> None:
            raise err.located(*where[index])

        examples = list(build_examples(records, tokenizer, render=render, max_length=max_length, keep=truncate,
                                       on_error=located, window=window))
    curriculum = read_curriculum(records, where).expand([ex.index for ex in examples])  # windows inherit it
    n_reason = sum(sum(1 for t in ex.token_labels[1:] if t == REASON) for ex in examples)
    n_act = sum(sum(1 for t in ex.token_labels[1:] if t == ACT) for ex in examples)
    truncated = sum(1 for ex in examples if ex.stats.truncated_tokens)
    if n_reason + n_act == 0:
        raise InputError(f"{path}: no reasoning or action token is left to train on "
                         f"({len(examples)} records, {truncated} truncated at --max-length {max_length})",
                         hint="raise --max-length" + (", use --keep end" if truncate != "end" else "")
                              + ", or check the spans with sad mask-check")
    stats = {"records": len(records), "examples": len(examples), "tokens": sum(len(ex.input_ids) for ex in examples),
             "reason_tokens": n_reason, "act_tokens": n_act, "truncated_records": truncated,
             "truncated_reason_tokens": sum(ex.stats.truncated_reason for ex in examples),
             "truncated_act_tokens": sum(ex.stats.truncated_act for ex in examples),
             "no_supervised_records": sum(1 for ex in examples
                                          if not any(t in (REASON, ACT) for t in ex.token_labels[1:]))}
    stats.update(_window_stats(examples))
    from sadcli.distill.teacher_cache import data_fingerprint

    settings = ({"emitted": True, "max_length": max_length, "truncate": truncate} if emitted else
                fingerprint_settings(render, max_length, truncate, window))
    fp = data_fingerprint(examples, **settings)
    return Prepared(examples, curriculum, fp, path, stats, None if emitted else _markers_of(records), settings)


def _markers_of(records: list[dict[str, Any]]) -> str | None:
    """The segment markers the records were written with (``paper`` / ``native``; a record's ``markers``
    field, else detected from its text), None when they differ: ``sad eval`` and ``sad collect --teacher
    hf:DIR`` read it from sad_config.json to prompt the student as it was trained."""
    from sadcli.sadformat import format_from_record

    names = {format_from_record(r).markers.name for r in records[:1000]}
    return names.pop() if len(names) == 1 else None


def _markers_of_file(path: str) -> str | None:
    from sadcli.records import FIX_HINT, read_records

    for _, rec in read_records(path, hint=FIX_HINT):
        return _markers_of([rec])
    return None


def _window_stats(examples: list[Any]) -> dict[str, Any]:
    """Step windows: how many records became how many examples (``windows_per_record``: id -> count)."""
    per: dict[str, int] = {}
    split = context = 0
    for ex in examples:
        w = getattr(ex, "window", None)
        if w is not None:
            per[ex.id] = w.count
            split += ex.stats.split_steps
            context += ex.stats.context_tokens
    return {"windowed_records": len(per),
            "window_examples": sum(per.values()), "max_windows": max(per.values(), default=1),
            "split_steps": split, "context_tokens": context, "windows_per_record": per}


def _from_emitted(records: list[dict[str, Any]], where: list[tuple[str, Any]]) -> list[Any]:
    """Examples from ``sad mask-check --emit`` lines (input_ids + token_labels already built)."""
    from sadcli.masks.emit import example_from_record

    out = []
    for i, (rec, (file, line)) in enumerate(zip(records, where, strict=False)):
        try:
            out.append(example_from_record(rec, i))
        except SadError as e:
            raise e.located(file, line) from None
    return out


def check_span_contents(records: list[dict[str, Any]], where: list[tuple[str, Any]], *,
                        trust_spans: bool = False) -> None:
    """Stop at the first span that does not hold what its kind and step claim (sadcli.masks.spancheck).

    Records without ``steps`` cannot be checked: an error unless ``trust_spans``.
    """
    from sadcli.masks.spancheck import HINT, NO_STEPS_HINT, check_spans, has_steps
    from sadcli.schema import validate_segmented

    for rec, (file, line) in zip(records, where, strict=False):
        if not has_steps(rec):
            if trust_spans:
                continue
            raise InputError("record has no \"steps\": its spans cannot be checked against them",
                             file=file, line=line, hint=NO_STEPS_HINT)
        try:
            validate_segmented(rec)
        except SadError as e:
            raise e.located(file, line) from None
        bad = check_spans(rec, limit=1)
        if bad:
            raise InputError(bad[0].message(), file=file, line=line, hint=HINT)


def _fit_emitted(examples: list[Any], where: list[tuple[str, Any]], max_length: int, keep: str,
                 vocab: int) -> list[Any]:
    """``--emit`` examples: ids checked against the vocabulary, cut to ``max_length`` like text input."""
    import numpy as np

    from sadcli.labels import IGNORE_INDEX

    for ex, (file, line) in zip(examples, where, strict=False):
        ids = np.asarray(ex.input_ids, dtype=np.int64)
        bad = np.flatnonzero((ids < 0) | (ids >= vocab))
        if len(bad):
            t = int(bad[0])
            raise InputError(f"input_ids[{t}] = {int(ids[t])} is not a token id of this tokenizer "
                             f"(vocabulary 0..{vocab - 1}; {len(bad)} bad id(s))", file=file, line=line,
                             hint="emit with the same tokenizer as --teacher (sad mask-check --tokenizer)")
        n = len(ids)
        if n <= max_length:
            continue
        lo, hi = (0, max_length) if keep == "start" else (n - max_length, n)
        labels = np.asarray(ex.token_labels, dtype=np.int64)
        cut = np.concatenate([labels[:lo], labels[hi:]])
        ex.stats.truncated_reason += int((cut == REASON).sum())
        ex.stats.truncated_act += int((cut == ACT).sum())
        ex.stats.truncated_tokens += n - max_length
        ex.stats.n_tokens = max_length
        ex.input_ids = ex.input_ids[lo:hi]
        ex.token_labels = ex.token_labels[lo:hi]
        ex.attention_mask = ex.attention_mask[lo:hi]
        kept = labels[lo:hi]
        ex.labels = np.where((kept == REASON) | (kept == ACT), ids[lo:hi], IGNORE_INDEX).tolist()
    return examples


# --- models ----------------------------------------------------------------------------------

INFLUENCE_EXAMPLES = 16   # --layer-pick influence: candidate examples, evenly spread over the data...
INFLUENCE_TOKENS = 4096   # ...of which as few (still spread) as hold this many tokens score the layers


def influence_sample(examples: Sequence[Any]) -> list[list[int]]:
    """Token ids that ``--layer-pick influence`` scores the teacher's layers on.

    :data:`INFLUENCE_EXAMPLES` candidates evenly spread over the data, then the fewest of them (evenly
    spread among the candidates) whose tokens reach :data:`INFLUENCE_TOKENS`: one teacher forward over
    about 4k tokens (6 s for the embedded model on 2 CPU cores). On the demo's data, 4k and 15k tokens
    give the same block-influence ranking of the 12 kept layers.
    """
    if not len(examples):
        return []
    step = max(1, len(examples) // INFLUENCE_EXAMPLES)
    cands = [list(examples[i].input_ids) for i in range(0, len(examples), step)][:INFLUENCE_EXAMPLES]
    for m in range(1, len(cands) + 1):
        pick = [cands[round(j * (len(cands) - 1) / (m - 1))] for j in range(m)] if m > 1 else [cands[0]]
        if sum(len(c) for c in pick) >= INFLUENCE_TOKENS:
            return pick
    return cands


def build_student(opts: DistillOptions, teacher: Any, seed: int,
                  examples: Sequence[Any] = ()) -> tuple[Any, dict[str, Any]]:
    """The student and a description of how it was made (for sad_config.json).

    ``examples`` (training examples with ``input_ids``) are what ``--layer-pick influence`` scores the
    teacher's layers on (:func:`influence_sample`).
    """
    from sadcli.distill import students

    if opts.student:
        from sadcli.models.spec import load_model

        model = load_model(opts.student, dtype=opts.dtype, device="cpu")
        how = {"kind": "spec", "spec": opts.student}
    elif opts.student_config:
        model = students.student_from_config(opts.student_config, seed=seed)
        how = {"kind": "config", "file": opts.student_config}
    else:
        if teacher is None:
            raise InputError("--student-layers builds the student from the teacher's weights",
                             hint="with --teacher-cache give --student SPEC or --student-config FILE, or keep "
                                  "--teacher so its layers can be copied")
        layers = students.parse_layers(opts.student_layers or "6")
        if opts.layer_pick not in students.LAYER_PICKS:
            raise InputError(f"unknown --layer-pick {opts.layer_pick!r}", hint=" or ".join(students.LAYER_PICKS))
        scores, pick = None, opts.layer_pick if isinstance(layers, int) else "list"
        if pick == "influence":
            if not len(examples):
                raise InputError("--layer-pick influence needs training examples to score the layers on")
            scores = students.block_influence(teacher, influence_sample(examples))
            layers = students.influence_indices(scores, layers)
        model, idx = students.student_from_teacher(teacher, layers)
        how = {"kind": "layers", "teacher_layers": idx, "layer_pick": pick}
        if scores is not None:
            how["block_influence"] = [round(x, 5) for x in scores]
    how["parameters"] = students.count_parameters(model)
    return model, how


def teacher_identity(spec: str, model: Any) -> dict[str, Any]:
    """Who the teacher is: spec, resolved folder, config hash and a weight checksum."""
    import torch

    cfg = model.config.to_dict()
    for k in ("_name_or_path", "name_or_path", "transformers_version", "torch_dtype", "dtype"):
        cfg.pop(k, None)
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(model.state_dict().items())[:8]:
            h.update(name.encode())
            h.update(p.detach().float().cpu().flatten()[:4096].numpy().tobytes())
    return {"spec": spec, "model_type": cfg.get("model_type"), "vocab_size": model.get_output_embeddings().weight.shape[0],
            "layers": cfg.get("num_hidden_layers"),
            "config_sha256": hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest(),
            "weights_sha256": h.hexdigest()}


# --- the two entry points ---------------------------------------------------------------------

def build_teacher_cache(prepared: Prepared, teacher: Any, tokenizer: Any, out_dir: str, *, objective: Any,
                        k: int = 64, samples: int | None = None, seed: int = 0, batch_size: int = 8, device: str | None = None,
                        identity: dict[str, Any] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run the teacher once over the data; write top-k log-probs + tail of the supervised rows
    (``samples`` None: :func:`~sadcli.distill.teacher_cache.default_tail_samples` of ``k``)."""
    import torch

    from sadcli.distill.data import pad_batch
    from sadcli.distill.students import vocab_size
    from sadcli.distill.teacher_cache import CacheWriter, default_tail_samples
    from sadcli.distill.trainer import HiddenStates, _progress

    samples = default_tail_samples(k) if samples is None else samples
    V = vocab_size(teacher)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    teacher.eval().requires_grad_(False).to(dev)
    hidden = HiddenStates(teacher)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    manifest = {"k": k, "samples": samples, "seed": seed, "vocab_size": V, "temperature": objective.temperature, "positions": objective.positions,
                "action_vocab": objective.action_vocab_fingerprint, "teacher": identity or {},
                "data": {"fingerprint": prepared.fingerprint, "source": prepared.source,
                         "examples": len(prepared.examples), **objective.data_settings}}
    writer = CacheWriter(out_dir, manifest, k, V, samples)
    gen = torch.Generator().manual_seed(seed)
    order = list(range(len(prepared.examples)))
    progress = _progress(show_progress)
    task = progress.add_task("teacher cache", total=len(order), info="")
    try:
        with progress, torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                b = pad_batch([prepared.examples[i] for i in idx], pad_id)
                b = {key: v.to(dev) for key, v in b.items()}
                h = hidden(b["input_ids"], b["attention_mask"])
                rows, per_row = objective.teacher_rows(h, teacher, b["token_labels"], b["input_ids"], k, samples, gen)
                at = 0
                for n in per_row:
                    writer.add_example(_slice_rows(rows, at, at + n))
                    at += n
                progress.update(task, advance=len(idx), info=f"{writer.rows} rows")
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _slice_rows(rows: Any, lo: int, hi: int) -> Any:
    from sadcli.distill.teacher_cache import CachedRows

    return CachedRows(*(None if getattr(rows, f) is None else getattr(rows, f)[lo:hi]
                        for f in ("ids", "logprobs", "log_tail", "samples", "neg_entropy")))


def run(opts: DistillOptions) -> dict[str, Any]:
    """The whole ``sad distill`` command: build the cache (``cache_teacher``) or train; returns the
    cache manifest or the training summary."""
    from sadcli.distill.trainer import train

    check_distill_outputs(opts)  # before data, models or any output
    built = build_job(opts)
    if not hasattr(built, "student"):  # the cache manifest
        return built
    job = built
    summary = train(job, on_log=opts.on_log)
    last, first = summary.get("last") or {}, summary.get("first") or {}
    if not last or summary.get("resumed_from") == summary["steps"]:
        console.print(f"done: nothing left to train (already at step {summary['steps']}); student saved to "
                      f"{opts.output}")
        return summary
    console.print(f"done: {summary['steps']} steps, loss {first.get('loss', float('nan')):.4f} -> "
                  f"{last.get('loss', float('nan')):.4f} (L_CoT {last.get('loss_cot', 0):.4f}, "
                  f"L_Act {last.get('loss_act', 0):.4f}); student saved to {opts.output}")
    return summary


def check_distill_outputs(opts: DistillOptions) -> None:
    """Every output location, checked before anything is loaded or written: -o (a folder, not a file),
    --log, --cache-teacher."""
    from sadcli.fsutil import check_output, check_output_dir

    if opts.output:
        check_output_dir(opts.output, what="-o")
    if opts.cache_teacher:
        check_output_dir(opts.cache_teacher, what="--cache-teacher")
    if opts.log:
        check_output(opts.log, what="--log")


def build_job(opts: DistillOptions) -> Any:
    """Load data, models and teacher signal: a ready :class:`~sadcli.distill.trainer.DistillJob`
    (or, with ``cache_teacher``, build the cache and return its manifest)."""
    import torch

    import sadcli
    from sadcli.distill import students as st
    from sadcli.distill.config import load_toml, make_config
    from sadcli.distill.objective import Objective
    from sadcli.distill.teacher_cache import TeacherCache
    from sadcli.distill.trainer import DistillJob
    from sadcli.models.spec import load_model, load_tokenizer

    cfg = make_config(load_toml(opts.config_file) if opts.config_file else None, **opts.overrides)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress goes to stderr through the shared console
    torch.manual_seed(cfg.seed)
    no_teacher = opts.loss.get("name") == "sft" and bool(opts.student)  # sft: the student is the only model
    tokenizer = load_tokenizer(opts.student if opts.student and (opts.teacher_cache or no_teacher) else opts.teacher)
    prepared = prepare_data(opts.input, tokenizer, render=opts.render, max_length=opts.max_length,
                            truncate=opts.truncate, trust_spans=opts.trust_spans, window=opts.window,
                            token_cache=opts.token_cache)
    objective = Objective.from_options(opts.loss, seed=cfg.seed, examples=prepared.examples,
                                       eos_id=tokenizer.eos_token_id, tokenizer=tokenizer,
                                       data_settings={"render": opts.render, "max_length": opts.max_length,
                                                      "truncate": opts.truncate, "window": opts.window})
    _summary_data(prepared, opts)
    pacing = None if opts.cache_teacher else _pacing(opts, prepared.curriculum)
    from sadcli.distill.objective import provenance

    origin = provenance(prepared.examples, opts.teacher, objective.name,
                        warn=lambda m: console.print(f"[yellow]warning:[/] {m}", soft_wrap=True))

    from_layers = not opts.student and not opts.student_config
    need_teacher_model = bool(opts.cache_teacher) or from_layers or \
        (objective.needs_teacher and opts.teacher_cache is None)
    teacher = None
    identity = None
    if need_teacher_model:
        teacher = load_model(opts.teacher, dtype=opts.dtype, device="cpu")
        identity = teacher_identity(opts.teacher, teacher)
        objective.bind_teacher(teacher)

    if opts.cache_teacher:
        if not objective.needs_teacher:
            raise InputError(f"--loss {objective.name} uses no teacher logits: nothing to cache")
        manifest = build_teacher_cache(prepared, teacher, tokenizer, opts.cache_teacher, objective=objective,
                                       k=opts.top_k, samples=opts.tail_samples, seed=cfg.seed,
                                       batch_size=cfg.batch_size, device=opts.device,
                                       identity=identity, show_progress=not opts.quiet)
        console.print(f"teacher cache: {manifest['rows']} supervised positions, {manifest['k'] - manifest['samples']} "
                      f"top ids + {manifest['samples']} tail samples, {manifest['bytes_per_row']} bytes/position "
                      f"-> {opts.cache_teacher}")
        return manifest

    cache = None
    if opts.teacher_cache:
        cache = TeacherCache.open(opts.teacher_cache)
        if objective.needs_teacher and objective.config.divergence != "forward":
            raise InputError(f"--divergence {objective.config.divergence} cannot be trained from a teacher cache: "
                             "it depends on the teacher's probabilities of every token the student likes, which a "
                             "top-k cache does not hold (measured: 78% below the dense loss)",
                             hint="use the online teacher (drop --teacher-cache), or --divergence forward")
        cache.check(fingerprint=prepared.fingerprint, temperature=objective.temperature,
                    positions=objective.positions, fingerprint_of=prepared.fingerprint_of,
                    n_examples=len(prepared.examples))
        if cache.manifest.get("action_vocab") != objective.action_vocab_fingerprint:
            raise InputError("the teacher cache was built for another --action-vocab setting",
                             hint="rebuild it with the same loss options")
        cached = cache.manifest.get("teacher") or {}
        if identity is not None and cached.get("weights_sha256") not in (None, identity["weights_sha256"]):
            raise InputError(f"the teacher cache was built with teacher {cached.get('spec')!r}, not {opts.teacher!r}",
                             hint="give the cache's --teacher (its layers make the student), or rebuild the cache")
        identity = cached
        if not objective.needs_teacher:
            cache = None

    student, how = build_student(opts, teacher, cfg.seed, prepared.examples)
    if teacher is not None and getattr(teacher, "generation_config", None) is not None and not opts.student:
        import copy

        student.generation_config = copy.deepcopy(teacher.generation_config)
    t_vocab = st.vocab_size(teacher) if teacher is not None else (cache.manifest["vocab_size"] if cache else None)
    if t_vocab is not None:
        st.check_same_vocab(t_vocab, st.vocab_size(student), len(tokenizer),
                            teacher=f"teacher {opts.teacher}", student=f"student {_student_name(opts)}")
    if cache is not None:
        cache.check(fingerprint=prepared.fingerprint, vocab_size=st.vocab_size(student),
                    fingerprint_of=prepared.fingerprint_of, n_examples=len(prepared.examples))
    objective.bind_student(student)
    if teacher is not None and (not objective.needs_teacher or cache is not None):
        teacher = None  # the student copied its layers; free the memory
    console.print(f"student: {how['parameters'] / 1e6:.1f}M parameters ({how['kind']})"
                  + (f", teacher layers {how['teacher_layers']}" if how["kind"] == "layers" else "")
                  + (" (highest block influence)" if how.get("layer_pick") == "influence" else ""))

    run_config = {
        "sad_version": sadcli.__version__, "command": "distill",
        "data": {"input": os.path.abspath(opts.input) if opts.input != "-" else "-", **prepared.stats,
                 "render": opts.render, "max_length": opts.max_length, "keep": opts.truncate,
                 "fingerprint": prepared.fingerprint,
                 "curriculum": pacing.to_dict() if pacing is not None else None, "window": opts.window},
        "teacher": None if objective.name == "sft" else (identity or {"spec": opts.teacher}),
        "teacher_cache": opts.teacher_cache, "provenance": origin,
        "student": how, "loss": objective.describe(), "train": cfg.to_dict(), "seed": cfg.seed,
    }
    run_config["fingerprint"] = hashlib.sha256(json.dumps(
        {k: run_config[k] for k in ("data", "student", "loss", "train")}, sort_keys=True, default=str
    ).encode()).hexdigest()
    run_config["data"]["markers"] = prepared.markers  # after the fingerprint: older runs still resume
    job = DistillJob(student=student, tokenizer=tokenizer, examples=prepared.examples, objective=objective,
                     train=cfg, out_dir=opts.output, teacher=teacher, cache=cache,
                     curriculum=prepared.curriculum, pacing=pacing, log_path=opts.log, resume=opts.resume, device=opts.device,
                     report_to=opts.report_to, run_config=run_config, show_progress=not opts.quiet, fsdp=opts.fsdp)
    return job


def _student_name(opts: DistillOptions) -> str:
    return opts.student or (f"--student-config {opts.student_config}" if opts.student_config
                            else f"--student-layers {opts.student_layers}")


def _pacing(opts: DistillOptions, curriculum: Curriculum) -> Any:
    """Resolve ``--curriculum`` (default: sorted when the records carry the fields) and say which at start."""
    from sadcli.distill.data import resolve_pacing

    p = resolve_pacing(opts.curriculum, curriculum, c0=opts.c0, steps=opts.curriculum_steps)
    why = "" if opts.curriculum else (" (default: the records carry curriculum fields)" if curriculum.active
                                      else " (default: the records carry no curriculum fields)")
    T = f"{p.steps} steps" if p.steps else ("the whole run" if p.mode == "stages" else "half the run")
    detail = {"none": "seeded shuffle", "sorted": "one pass easy -> hard per epoch, ties shuffled",
              "stages": f"baby steps, stage s open after s/K of {T}",
              "competence": f"c(t) = min(1, sqrt(t(1-c0^2)/T + c0^2)), c0 = {p.c0}, T = {T}"}[p.mode]
    console.print(f"curriculum: {p.mode}{why} — {detail}", highlight=False)
    return p


def _summary_data(p: Prepared, opts: DistillOptions) -> None:
    s = p.stats
    msg = (f"data: {s['records']} records, {s['tokens']} tokens, {s['reason_tokens']} reasoning + "
           f"{s['act_tokens']} action tokens supervised")
    if s.get("windowed_records"):
        msg += (f"; {s['windowed_records']} records longer than --max-length {opts.max_length} became "
                f"{s['window_examples']} step windows ({s['window_examples'] / s['windowed_records']:.2f} per record, "
                f"at most {s['max_windows']}; {s['split_steps']} over-long steps split) -> {s['examples']} examples")
    if s["truncated_records"]:
        msg += (f"; {s['truncated_records']} records truncated at --max-length {opts.max_length} "
                f"({s['truncated_reason_tokens']} reasoning, {s['truncated_act_tokens']} action tokens cut)")
    console.print(msg, highlight=False)


__all__ = ["DistillOptions", "Prepared", "prepare_data", "build_student", "build_teacher_cache", "run",
           "teacher_identity"]
