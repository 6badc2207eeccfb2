"""The ReAct agent loop: run episodes of an environment with a policy, yield schema-v1 records.

``run_episodes(env_spec, tasks, policy, parallel=N)`` keeps up to N episodes active, each in its own
environment slot (a worker process by default). Every round it asks the policy for the next step of
*all* active episodes at once (a model policy generates them in one batch), sends the actions to the
slots, and collects the answers, which the worker processes compute at the same time.

A policy is any object with ``name: str`` and ``act(states: list[EpisodeState]) -> list[Decision]``
(see :mod:`sadcli.teachers`). A model output without a parsable action is sent to the environment
as it is, which answers it as an invalid action (as in ReAct); it is counted in ``meta.invalid_actions``.
An environment fault or a policy error ends that episode as failed (``success: false``,
``meta.error``) and the run goes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sadcli.agent.workers import EnvFault, make_slot
from sadcli.envs.base import PromptTemplate, Task
from sadcli.envs.registry import EnvSpec


@dataclass
class EpisodeState:
    """What a policy sees of one running episode."""

    task: Task
    env: str
    prompt: PromptTemplate
    task_text: str = ""
    steps: list[dict] = field(default_factory=list)
    observation: str = ""
    expert: str | None = None
    expert_plan: list[str] | None = None
    admissible: list[str] | None = None
    state: dict = field(default_factory=dict)
    success: bool = False
    reward: float = 0.0
    invalid: int = 0
    done: bool = False
    error: str | None = None
    generated_tokens: int = 0
    t0: float = field(default_factory=time.monotonic)
    info: dict = field(default_factory=dict)
    scratch: dict = field(default_factory=dict)  # a policy's own per-episode memory

    @property
    def id(self) -> str:
        return self.task.id


@dataclass
class Decision:
    """A policy's next step for one episode: the action text (parsed by the env), and its reasoning."""

    action: str
    reason: str | None = None
    raw: str | None = None
    logprobs: list | None = None
    error: str | None = None
    tokens: int = 0                 # tokens the policy generated for this step (models; 0 otherwise)
    invalid_format: bool = False    # the output had no parsable action line (it is sent as it is)


class Policy(Protocol):
    name: str

    def act(self, states: list[EpisodeState]) -> list[Decision]: ...


@dataclass
class EnvInfo:
    name: str
    prompt: PromptTemplate
    max_steps: int
    default_split: str | None = None


def _prompt_from(d: Any) -> PromptTemplate:
    if isinstance(d, dict):
        known = {k: v for k, v in d.items() if k in PromptTemplate.__dataclass_fields__}
        if "stop" in known:
            known["stop"] = tuple(known["stop"])
        return PromptTemplate(**known)
    return PromptTemplate("Solve the task by interleaving Thought and Action lines.")


class EnvPool:
    """N environment slots built from one spec; ``info`` and ``tasks(split)`` come from the first."""

    def __init__(self, spec: EnvSpec, parallel: int = 1, *, in_process: bool = False,
                 timeout: float | None = 300.0):
        self.spec = spec
        self._in_process, self._timeout = in_process, timeout
        self.slots = [make_slot(spec, in_process=in_process, timeout=timeout) for _ in range(max(1, parallel))]
        first = self.slots[0]
        step_timeout = getattr(first, "timeout", None)
        if step_timeout is not None:  # starting a worker (imports, a JVM) is not a step: give it time
            first.timeout = max(step_timeout, 120.0)
        try:
            hello = first.request("hello")
        except EnvFault as e:
            self.close()
            from sadcli.errors import InputError
            msg = str(e).removeprefix("InputError: ")
            raise InputError(f"cannot start environment {spec.spec}: {msg}",
                             hint=None if " — " in msg else "check the environment's options and that its "
                                                            "package is installed") from None
        finally:
            if step_timeout is not None:
                first.timeout = step_timeout
        self.info = EnvInfo(hello["name"], _prompt_from(hello["prompt"]), hello["max_steps"],
                            hello.get("default_split"))

    def resize(self, n: int) -> None:
        """Use ``n`` slots (at least 1): start more workers, or close the extra ones."""
        n = max(1, n)
        while len(self.slots) > n:
            self.slots.pop().close()
        while len(self.slots) < n:
            self.slots.append(make_slot(self.spec, in_process=self._in_process, timeout=self._timeout))

    def tasks(self, split: str) -> list[Task]:
        return [Task.from_dict(d) for d in self.slots[0].request("tasks", split)]

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.slots)

    def close(self) -> None:
        for s in self.slots:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _apply(st: EpisodeState, snap: dict) -> None:
    st.observation = snap["observation"]
    st.expert = snap.get("expert")
    st.expert_plan = snap.get("expert_plan")
    st.admissible = snap.get("admissible")
    st.state = snap.get("state") or {}
    st.success = bool(snap.get("success"))


def make_record(st: EpisodeState, teacher: str, *, truncated: bool = False) -> dict:
    meta: dict[str, Any] = {"split": st.task.split, "game": st.task.game, "seed": st.task.seed}
    meta.update(st.task.meta)
    meta.update({"steps": len(st.steps), "wall_time_s": round(time.monotonic() - st.t0, 3),
                 "invalid_actions": st.invalid})
    if st.generated_tokens:
        meta["generated_tokens"] = st.generated_tokens
    if truncated:
        meta["truncated"] = True
    if st.info:
        meta["final_info"] = st.info
    if st.error:
        meta["error"] = st.error
    rec: dict[str, Any] = {"schema": 1, "id": st.task.id, "env": st.env, "task": st.task_text,
                           "system": st.prompt.instruction, "steps": st.steps,
                           "success": bool(st.success and not st.error), "reward": float(st.reward),
                           "teacher": teacher, "meta": meta}
    return rec


def fail_step(st: EpisodeState, d: Decision, e: Exception) -> None:
    """The environment failed on ``d``: the step is kept without an observation, the episode fails."""
    st.steps.append({"reason": d.reason, "action": (d.action or "").strip(), "observation": None})
    st.error = f"step failed: {e}"


def record_step(st: EpisodeState, d: Decision, snap: dict, limit: int) -> bool | None:
    """Add the environment's answer ``snap`` to decision ``d`` to the episode's history.

    Returns None while the episode goes on, else whether it was cut by the step cap ``limit`` (truncated).
    """
    step: dict[str, Any] = {"reason": d.reason or None, "action": snap["action"],
                            "observation": snap["observation"]}
    st.generated_tokens += d.tokens or 0
    if snap["invalid"]:
        st.invalid += 1
        if d.raw is not None:
            step["raw"] = d.raw
        if d.invalid_format:
            step["invalid_format"] = True
    if d.logprobs is not None:
        step["logprobs"] = d.logprobs
    st.steps.append(step)
    st.reward += snap["reward"]
    if snap.get("info"):
        st.info = snap["info"]
    _apply(st, snap)
    if (snap.get("info") or {}).get("won"):  # envs without success() report it in info
        st.success = True
    if snap["done"] or len(st.steps) >= limit:
        return not snap["done"]
    return None


def start_episode(st: EpisodeState, snap: dict) -> None:
    """The environment's answer to ``reset``: the task text and the first observation."""
    st.task_text = snap["observation"]
    _apply(st, snap)
    st.t0 = time.monotonic()


def run_episodes(pool: EnvPool, tasks: Iterable[Task], policy: Policy, *, max_steps: int | None = None,
                 on_step: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Play ``tasks`` with ``policy`` on the slots of ``pool``; yield one record per finished episode.

    Records come in finishing order (not task order) when ``len(pool.slots) > 1``. This is the
    round-by-round loop (every round waits for all active episodes' decisions); a policy that can decode
    rows continuously is better played with :func:`sadcli.agent.scheduler.play`.
    """
    limit = max_steps or pool.info.max_steps
    queue = deque(tasks)
    slots = pool.slots
    active: dict[int, EpisodeState] = {}
    teacher = getattr(policy, "name", type(policy).__name__)

    while queue or active:
        # 1. new episodes on free slots
        resetting = []
        for i, slot in enumerate(slots):
            if i not in active and queue:
                task = queue.popleft()
                active[i] = EpisodeState(task=task, env=pool.info.name, prompt=pool.info.prompt)
                slot.send("reset", task.to_dict())
                resetting.append(i)
        finished: list[tuple[EpisodeState, bool]] = []
        for i in resetting:
            st = active[i]
            try:
                snap = slots[i].receive()
            except EnvFault as e:
                st.error = f"reset failed: {e}"
                finished.append((st, False))
                del active[i]
                continue
            start_episode(st, snap)
        # 2. one decision for every active episode, in one batch
        order = [i for i in sorted(active)]
        if order:
            states = [active[i] for i in order]
            try:
                decisions = policy.act(states)
            except Exception as e:  # noqa: BLE001 - a policy failure fails these episodes, not the run
                decisions = [Decision("", error=f"{type(e).__name__}: {e}") for _ in states]
            if len(decisions) != len(states):
                decisions = [Decision("", error=f"the policy answered {len(decisions)} of {len(states)} episodes")
                             for _ in states]
            stepping = []
            for i, st, d in zip(order, states, decisions, strict=False):
                if d.error:
                    st.error = f"policy failed: {d.error}"
                    finished.append((st, False))
                    del active[i]
                    continue
                slots[i].send("step", d.action)
                stepping.append((i, st, d))
            # 3. answers from all slots
            n_steps = 0
            for i, st, d in stepping:
                try:
                    snap = slots[i].receive()
                except EnvFault as e:
                    fail_step(st, d, e)
                    finished.append((st, False))
                    del active[i]
                    continue
                n_steps += 1
                ended = record_step(st, d, snap, limit)
                if ended is not None:
                    finished.append((st, ended))
                    del active[i]
            if on_step and n_steps:
                on_step(n_steps)
        for st, truncated in finished:
            yield make_record(st, teacher, truncated=truncated and not st.error)
