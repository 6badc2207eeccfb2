"""Episodes of one or more policies in an environment: schema-v1 records with eval fields.

Every record is a ``sad collect`` trajectory (so it chains into ``sad segment``) plus::

    "model": label, "seed": run seed, "termination": see sadcli.eval.termination,
    "latency_s": wall-clock seconds of the episode, "generated_tokens": tokens the policy wrote,
    "step_cap": the cap it ran under

Output is incremental and resumable like ``collect``: one flushed line per finished episode; a rerun with
``resume=True`` keeps the complete lines (a half-written last line is cut), plays only the missing
``(model, seed, episode)`` triples, and at the end rewrites the file atomically in the canonical order
(model, seed, task order) — so an interrupted-then-resumed run and an uninterrupted one end with the same
episodes, in the same order (only wall-clock fields differ).

Step caps follow the field's conventions (:data:`EVAL_STEP_CAPS`): ALFWorld 50 (ALFWorld's
``max_nb_steps_per_episode``; ``collect``'s 150 is an expert budget), wiki-QA / HotPotQA 7 (ReAct),
WebShop 15 (ReAct), TextWorldExpress and ScienceWorld per game / task (our choices, see the table).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sadcli.agent.loop import EnvPool
from sadcli.agent.scheduler import play
from sadcli.envs.base import Task
from sadcli.errors import InputError
from sadcli.eval.termination import classify

# Step caps for evaluation, per environment (and per game / task where it differs).
EVAL_STEP_CAPS: dict[str, int | dict[str, int]] = {
    "alfworld": 50,
    "wikiqa": 7,
    "hotpotqa": 7,
    "webshop": 15,
    # TextWorldExpress: about 3x the longest gold paths we see per game (ours; TWX itself sets none)
    "twx": {"twc": 50, "cookingworld": 50, "coin": 50, "mapreader": 50, "sorting": 30, "arithmetic": 20,
            "simonsays": 30, "peckingorder": 30, "*": 50},
    # ScienceWorld: 100 for every task (ours; the ScienceWorld paper gives agents a per-task budget derived
    # from gold path lengths, which this environment does not expose)
    "scienceworld": 100,
}


def step_cap(env: str, options: dict | None, env_default: int) -> int:
    """The evaluation step cap of ``env`` (its own ``max_steps`` for unknown / plugin environments)."""
    cap = EVAL_STEP_CAPS.get(env)
    if cap is None:
        return env_default
    if isinstance(cap, dict):
        game = str((options or {}).get("game") or "twc")
        return cap.get(game, cap["*"])
    return int(cap)


def key(rec: dict) -> tuple[str, int, str]:
    return (str(rec.get("model")), int(rec.get("seed") or 0), str(rec.get("id")))


def annotate(rec: dict, model: str, seed: int, cap: int) -> dict:
    """Add the eval fields to a record from the agent loop (in place; returns it)."""
    meta = rec.get("meta") or {}
    rec["model"] = model
    rec["seed"] = seed
    rec["termination"] = classify(rec)
    rec["latency_s"] = float(meta.get("wall_time_s", 0.0))
    rec["generated_tokens"] = int(meta.get("generated_tokens", 0))
    rec["step_cap"] = cap
    return rec


def read_episodes(path: str) -> list[dict]:
    """The complete records of an episodes file (a half-written last line is cut first)."""
    from sadcli.agent.collect import repair_tail
    from sadcli.jsonl import loads

    if not os.path.exists(path):
        return []
    repair_tail(path)
    out = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                rec = loads(raw)
            except ValueError:
                raise InputError("invalid JSON line in the episodes file to resume", file=path, line=lineno,
                                 hint="remove the line, or start over without --resume") from None
            if not isinstance(rec, dict) or "model" not in rec:
                raise InputError("not a `sad eval` episode (no 'model' field)", file=path, line=lineno,
                                 hint="resume only a file `sad eval -o` wrote")
            out.append(rec)
    return out


@dataclass
class RolloutPlan:
    tasks: list[Task]
    seeds: list[int]
    cap: int
    done: dict[tuple[str, int, str], dict] = field(default_factory=dict)

    def todo(self, model: str, seed: int) -> list[Task]:
        return [t for t in self.tasks if (model, seed, t.id) not in self.done]


def canonical(records: Iterable[dict], labels: list[str], plan: RolloutPlan) -> list[dict]:
    """Records in (model, seed, task) order."""
    order = {t.id: i for i, t in enumerate(plan.tasks)}
    rank = {m: i for i, m in enumerate(labels)}
    return sorted(records, key=lambda r: (rank.get(str(r.get("model")), len(rank)), int(r.get("seed") or 0),
                                          order.get(str(r.get("id")), len(order))))


def run_rollouts(pool: EnvPool, plan: RolloutPlan, models: list[tuple[str, Callable[[int], object]]], *,
                 write: Callable[[dict], None] | None = None,
                 on_episode: Callable[[dict], None] | None = None,
                 on_step: Callable[[int], None] | None = None) -> list[dict]:
    """Play every ``(model, seed, task)`` of ``plan`` not in ``plan.done``; return all records (old + new).

    ``models`` is ``[(label, make)]``; ``make(seed)`` returns the policy, built only when the model has
    episodes left to play (and kept for its other seeds, reseeded).
    """
    records = list(plan.done.values())
    for label, make in models:
        policy = None
        for seed in plan.seeds:
            todo = plan.todo(label, seed)
            if not todo:
                continue
            if policy is None:
                policy = make(seed)
            reseed = getattr(policy, "reseed", None)
            if callable(reseed):
                reseed(seed)
            for rec in play(pool, todo, policy, max_steps=plan.cap, on_step=on_step):
                rec = annotate(rec, label, seed, plan.cap)
                if write is not None:
                    write(rec)
                records.append(rec)
                plan.done[key(rec)] = rec
                if on_episode is not None:
                    on_episode(rec)
        if policy is not None:
            close = getattr(policy, "close", None)
            if callable(close):
                close()
            del policy
    return records

