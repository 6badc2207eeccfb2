"""``expert``: the environment's expert / gold actions, with reasoning written by per-environment templates.

One module per environment holds its reasoner (``expert_alfworld``, ``expert_twx``,
``expert_scienceworld``); :data:`REASONERS` maps an environment name to it. A reasoner explains a step
from what the agent has been shown — the task, earlier observations, the actions it took — plus
commonsense said as such ("a mug is more likely to appear in ..."), and names what the next action
does. It never states a fact only the gold plan or the game state knows; exploration is phrased as
exploration. Routine steps (walking on during a search, opening a closed receptacle) get no thought,
as in ReAct. ``tests/grounding/`` checks every thought against the trajectory.

A plugin environment can give its own reasoning through ``state_info()["expert_reason"]``.
"""

from __future__ import annotations

from collections.abc import Callable

from sadcli.agent.loop import Decision, EpisodeState
from sadcli.teachers.expert_alfworld import group_receptacles, reason_alfworld
from sadcli.teachers.expert_hotpotqa import reason_hotpotqa
from sadcli.teachers.expert_scienceworld import reason_scienceworld
from sadcli.teachers.expert_twx import reason_twx
from sadcli.teachers.expert_webshop import reason_webshop

__all__ = ["REASONERS", "ExpertTeacher", "group_receptacles"]

# One line per environment: env name -> reasoner(EpisodeState) -> thought or None.
REASONERS: dict[str, Callable[[EpisodeState], str | None]] = {
    "webshop": reason_webshop,
    "wikiqa": reason_hotpotqa,
    "alfworld": reason_alfworld,
    "twx": reason_twx,
    "scienceworld": reason_scienceworld,
}


class ExpertTeacher:
    """The expert's action, with the environment's reasoning template (or none)."""

    name = "expert"

    def __init__(self, reasoning: bool = True):
        self.reasoning = reasoning

    def reason(self, st: EpisodeState) -> str | None:
        if not self.reasoning:
            return None
        given = (st.state or {}).get("expert_reason")
        if given:
            return str(given)
        fn = REASONERS.get(st.env)
        return fn(st) if fn else None

    def act(self, states: list[EpisodeState]) -> list[Decision]:
        out = []
        for st in states:
            if not st.expert:
                out.append(Decision("", error=f"the {st.env} environment gave no expert action "
                                               "(it has no expert, or the episode left the gold path)"))
                continue
            try:
                reason = self.reason(st)
            except Exception as e:  # noqa: BLE001 - a template bug must not lose the episode
                reason = None
                st.scratch.setdefault("reason_errors", []).append(f"{type(e).__name__}: {e}")
            out.append(Decision(st.expert, reason=reason))
        return out
