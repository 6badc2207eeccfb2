"""A pool of OpenAI-compatible endpoints (``openai:URL1,URL2,...#model``): least-loaded, sticky, fail-over.

- A new episode goes to the live endpoint with the fewest episodes in flight (ties: the first listed).
- An episode stays on its endpoint for all its steps, so the server's prefix cache (vLLM
  ``--enable-prefix-caching``, SGLang's radix cache) holds its growing prompt.
- When an endpoint fails for good (connection refused, timeouts or 5xx after the teacher's retries) it is
  marked dead for the rest of the run; each of its episodes is *resumed* on a live endpoint at the step that
  failed: requests are stateless (every request carries the whole episode so far), so nothing is replayed
  or duplicated, the new endpoint only misses the prefix cache once.

"In flight" counts episodes pinned to an endpoint whose state the agent loop still holds: the count drops
when the loop lets go of a finished episode (``weakref.finalize`` on its ``EpisodeState``), so the pool
needs no hook in the loop and works with any batching of episodes.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

SCRATCH_KEY = "openai_endpoint"


@dataclass
class Endpoint:
    url: str
    index: int
    in_flight: int = 0          # episodes pinned here and not finished
    episodes: int = 0           # episodes ever pinned here (moved-in ones included)
    dead: str | None = None     # why it was given up, or None


@dataclass
class EndpointPool:
    urls: list[str]
    endpoints: list[Endpoint] = field(init=False)
    on_dead: object = None      # callable(endpoint, reason) or None

    def __post_init__(self) -> None:
        self.endpoints = [Endpoint(u, i) for i, u in enumerate(self.urls)]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.endpoints)

    def alive(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.dead is None]

    def pin(self, state) -> Endpoint | None:
        """The endpoint of this episode (``state``: an ``EpisodeState``), choosing one if it has none or if
        its endpoint died; None when every endpoint is dead."""
        with self._lock:
            holder = state.scratch.get(SCRATCH_KEY)
            if holder is not None and holder[0] is not None and self.endpoints[holder[0]].dead is None:
                return self.endpoints[holder[0]]
            live = self.alive()
            if not live:
                return None
            ep = min(live, key=lambda e: (e.in_flight, e.index))
            if holder is None:
                holder = [None]
                state.scratch[SCRATCH_KEY] = holder
                weakref.finalize(state, self._release, holder)
            elif holder[0] is not None:
                self.endpoints[holder[0]].in_flight -= 1
            holder[0] = ep.index
            ep.in_flight += 1
            ep.episodes += 1
            return ep

    def _release(self, holder: list) -> None:
        with self._lock:
            if holder[0] is not None:
                self.endpoints[holder[0]].in_flight -= 1
                holder[0] = None

    def mark_dead(self, ep: Endpoint, reason: str) -> bool:
        """Give ``ep`` up; True the first time (the caller then tells the user)."""
        with self._lock:
            if ep.dead is not None:
                return False
            ep.dead = reason
        if callable(self.on_dead):
            self.on_dead(ep, reason)
        return True
