"""Agent environments behind one small protocol (:mod:`sadcli.envs.base`).

Built in: ``alfworld``, ``twx`` (TextWorldExpress), ``scienceworld``, ``webshop``, ``wikiqa`` (HotPotQA with
``--corpus hotpotqa``); any other through
``module:factory`` (:mod:`sadcli.envs.registry`). Each adapter imports its package lazily.
"""

from sadcli.envs.base import BaseEnv, Env, PromptTemplate, Task, Transition
from sadcli.envs.registry import BUILTIN, EnvSpec

__all__ = ["BUILTIN", "BaseEnv", "Env", "EnvSpec", "PromptTemplate", "Task", "Transition"]
