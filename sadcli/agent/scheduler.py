"""Continuous batching of episodes: a finished action leaves the decode batch, its next prompt joins it.

:func:`sadcli.agent.loop.run_episodes` plays episodes in rounds: the policy writes the next step of every
active episode in one batch, then all environments step, then the next round starts. With a model
policy a round lasts as long as its longest answer, so most decode steps run with a few rows of the
batch (a 135M model often writes 48 tokens where other rows stop after 10).

:func:`play` removes the rounds. A policy that offers ``stream()`` (:class:`DecisionStream`; the model
policies of ``collect --teacher hf:`` and ``sad eval`` do, through :class:`sadcli.teachers.continuous.RowBatch`)
is driven one decode step at a time::

    loop until no task is left and no episode runs:
        1. every free environment slot starts the next task (``reset``, answered in its worker)
        2. environment answers that are already there are applied: a reset or a step that did not end the
           episode puts the episode's next prompt into the stream (it joins the decode batch at the next
           step, its new tokens prefilled against the KV cache the episode kept); an episode that ended
           becomes a record and frees its slot. When no row is decoding, wait for the first answer.
        3. one decode step for every row of the stream; each row that wrote its action line leaves with a
           Decision, whose action goes to its slot at once (``step``), while the other rows keep decoding.

So the environments step while the model decodes other rows, and the batch stays full as long as there
are tasks. Records come in finishing order; they are the records the round loop writes (same fields,
same step logic: :func:`sadcli.agent.loop.record_step`). A policy without ``stream()`` (the expert, an
OpenAI endpoint), or whose ``stream()`` returns None, is played by the round loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from sadcli.agent.loop import (
    Decision,
    EnvPool,
    EpisodeState,
    Policy,
    fail_step,
    make_record,
    record_step,
    run_episodes,
    start_episode,
)
from sadcli.agent.workers import EnvFault
from sadcli.envs.base import Task


class DecisionStream(Protocol):
    """Decisions written a token at a time for a changing set of episodes."""

    def add(self, key: Any, st: EpisodeState) -> None:
        """Queue the episode's next step (it joins the batch at the next :meth:`step`)."""

    def step(self) -> list[tuple[Any, Decision]]:
        """One decode step; the episodes whose decision is complete, by key."""

    def __len__(self) -> int:
        """Episodes queued or decoding."""


def stream_of(policy: Policy) -> DecisionStream | None:
    make = getattr(policy, "stream", None)
    return make() if callable(make) else None


def play(pool: EnvPool, tasks: Iterable[Task], policy: Policy, *, max_steps: int | None = None,
         on_step: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Play ``tasks`` with ``policy`` on the slots of ``pool``, continuously batched when the policy can be;
    yield one record per finished episode (in finishing order)."""
    if stream_of(policy) is None:
        yield from run_episodes(pool, tasks, policy, max_steps=max_steps, on_step=on_step)
        return
    yield from run_continuous(pool, tasks, policy, max_steps=max_steps, on_step=on_step)


def run_continuous(pool: EnvPool, tasks: Iterable[Task], policy: Policy, *, max_steps: int | None = None,
                   on_step: Callable[[int], None] | None = None) -> Iterator[dict]:
    """The loop of the module docstring; ``policy.stream()`` must return a :class:`DecisionStream`."""
    limit = max_steps or pool.info.max_steps
    teacher = getattr(policy, "name", type(policy).__name__)
    stream = stream_of(policy)
    assert stream is not None, "run_continuous needs a policy with stream()"
    queue = deque(tasks)
    slots = pool.slots
    free = deque(range(len(slots)))
    states: dict[int, EpisodeState] = {}        # slot -> its running episode
    waiting: dict[int, Decision | None] = {}    # slot -> the request in flight (None: reset), oldest first
    decoding: set[int] = set()                  # slots whose episode is in the stream
    finished: deque[tuple[EpisodeState, bool]] = deque()  # (episode, truncated by the step cap)

    def end(i: int, truncated: bool) -> None:
        finished.append((states.pop(i), truncated))
        free.append(i)

    while queue or states:
        # 1. new episodes on free slots
        while free and queue:
            i, task = free.popleft(), queue.popleft()
            states[i] = EpisodeState(task=task, env=pool.info.name, prompt=pool.info.prompt)
            slots[i].send("reset", task.to_dict())
            waiting[i] = None
        # 2. environment answers: the ones already there; wait for one when nothing decodes
        n_steps = 0
        for i in list(waiting):
            if decoding and not slots[i].ready():
                continue
            d, st = waiting.pop(i), states[i]
            try:
                snap = slots[i].receive()
            except EnvFault as e:
                if d is None:
                    st.error = f"reset failed: {e}"
                else:
                    fail_step(st, d, e)
                end(i, False)
                continue
            if d is None:
                start_episode(st, snap)
            else:
                n_steps += 1
                ended = record_step(st, d, snap, limit)
                if ended is not None:
                    end(i, ended)
                    continue
            stream.add(i, st)
            decoding.add(i)
        # 3. one decode step; finished decisions go to their environments at once
        if decoding:
            try:
                out = stream.step()
            except Exception as e:  # noqa: BLE001 - a policy failure fails these episodes, not the run
                out = [(i, Decision("", error=f"{type(e).__name__}: {e}")) for i in sorted(decoding)]
                stream = stream_of(policy)  # a fresh batch: the failed one's state is unknown
            for i, d in out:
                decoding.discard(i)
                if d.error:
                    states[i].error = f"policy failed: {d.error}"
                    end(i, False)
                    continue
                slots[i].send("step", d.action)
                waiting[i] = d
        if on_step and n_steps:
            on_step(n_steps)
        while finished:
            st, truncated = finished.popleft()
            yield make_record(st, teacher, truncated=truncated and not st.error)
