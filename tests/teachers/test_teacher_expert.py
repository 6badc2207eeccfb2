"""Expert reasoning templates: grounded in what the agent saw, ReAct-like coverage, absent on routine steps."""

from __future__ import annotations

from sadcli.agent.loop import EpisodeState
from sadcli.envs.alfworld_expert import SearchExpert, search_order
from sadcli.envs.base import PromptTemplate, Task
from sadcli.envs.twc_expert import TWCExpert, goal_from_gold
from sadcli.teachers.expert import REASONERS, ExpertTeacher, group_receptacles
from sadcli.teachers.expert_alfworld import reason_alfworld
from sadcli.teachers.expert_scienceworld import reason_scienceworld
from sadcli.teachers.expert_twx import reason_twx

ROOM = ("You are in the middle of a room. Looking quickly around you, you see a cabinet 2, a cabinet 1, "
        "a countertop 1, a microwave 1, a fridge 1, a sinkbasin 1, and a shelf 1.\n\n"
        "Your task is to: heat some mug and put it in cabinet.")
HEAT = {"task_type": "pick_heat_then_place_in_recep", "object": "mug", "receptacle": "cabinet", "toggle": ""}
RECEPTACLES = ["cabinet 2", "cabinet 1", "countertop 1", "microwave 1", "fridge 1", "sinkbasin 1", "shelf 1"]


def state(env, task_text, steps, expert, info=None, plan=None, scratch=None):
    return EpisodeState(task=Task(env, "s", "g"), env=env, prompt=PromptTemplate("x"), task_text=task_text,
                        steps=steps, expert=expert, expert_plan=plan, state=info or {}, scratch={} if scratch is None else scratch)


def step(action, obs, reason=None):
    return {"reason": reason, "action": action, "observation": obs}


def test_group_receptacles():
    assert group_receptacles(["cabinet 2", "cabinet 1", "countertop 1", "drawer 1", "drawer 3"]) == \
        "cabinet (1-2), countertop (1), drawer (1, 3)"


def test_reasoners_registry_is_one_line_per_environment():
    assert {"alfworld", "twx", "scienceworld"} <= set(REASONERS)
    assert REASONERS["alfworld"] is reason_alfworld and REASONERS["twx"] is reason_twx


def test_search_order_uses_prior_then_room_order_and_rules():
    prior = {("mug", "countertop"): 5, ("mug", "cabinet"): 3}
    order = search_order(RECEPTACLES, "mug", ["cabinet", "countertop", "shelf"], prior)
    assert order == ["countertop 1", "cabinet 1", "cabinet 2", "shelf 1"]  # rules drop fridge, microwave...


def _play(expert: SearchExpert, world: dict[str, str]):
    """Drive the expert against a scripted world (receptacle -> observation when visited)."""
    scratch: dict = {}
    steps: list[dict] = []
    for _ in range(30):
        it = expert.intent()
        if it is None:
            break
        info = dict(HEAT, intent=it)
        reason = reason_alfworld(state("alfworld", ROOM, list(steps), it["action"], info, scratch=scratch))
        a = it["action"]
        if a.startswith("go to "):
            obs = world.get(a[6:], f"On the {a[6:]}, you see nothing.")
        elif a.startswith("take "):
            obs = f"You pick up the {a[5:].split(' from ')[0]} from the {a.split(' from ')[1]}."
        elif a.startswith("heat "):
            obs = "You heat the mug 3 using the microwave 1."
        elif a.startswith("open "):
            obs = f"You open the {a[5:]}. The {a[5:]} is open. In it, you see nothing."
        else:
            obs = "You put the mug 3 in/on the cabinet 1."
        steps.append(step(a, obs, reason))
        expert.observe(a, obs, None)
    return steps


def test_alfworld_search_expert_never_revisits_and_explains_from_observations():
    orders = {"mug": ["countertop 1", "cabinet 1", "cabinet 2", "shelf 1"]}
    ex = SearchExpert(HEAT, RECEPTACLES, orders)
    ex.observe(None, ROOM, None)
    world = {"countertop 1": "On the countertop 1, you see a apple 1.",
             "cabinet 1": "The cabinet 1 is closed.",
             "cabinet 2": "On the cabinet 2, you see a mug 3, and a plate 1.",
             "microwave 1": "The microwave 1 is closed."}
    # opening cabinet 1 shows nothing; the search goes on to cabinet 2
    steps = _play(ex, world)
    actions = [s["action"] for s in steps]
    assert actions == ["go to countertop 1", "go to cabinet 1", "open cabinet 1", "go to cabinet 2",
                       "take mug 3 from cabinet 2", "go to microwave 1", "heat mug 3 with microwave 1",
                       "go to cabinet 2", "put mug 3 in/on cabinet 2"]
    r = [s["reason"] for s in steps]
    assert r[0] == ("To solve the task, I need to find and take a mug, then heat it with microwave, then put it "
                    "in/on cabinet. First I need to find a mug. A mug is more likely to appear in countertop (1), "
                    "cabinet (1-2), shelf (1). I can check one by one, starting with countertop 1.")
    assert r[1] is None and r[2] is None and r[3] is None  # walking on during the search, opening
    assert r[4] == "Now I find a mug (3). Next, I need to take it."
    assert r[5] == "Now I take a mug (3). Next, I need to go to microwave 1 and heat it."
    assert r[6] is None
    assert r[7] == "Now I heat the mug (3). Next, I need to put it in/on cabinet 2."  # a cabinet seen open


def test_alfworld_two_objects_remembers_the_second_one():
    goal = {"task_type": "pick_two_obj_and_place", "object": "cd", "receptacle": "shelf", "toggle": ""}
    ex = SearchExpert(goal, ["cabinet 1", "shelf 1", "desk 1"], {"cd": ["cabinet 1", "desk 1", "shelf 1"]})
    ex.observe(None, "room", None)
    ex.observe("go to cabinet 1", "On the cabinet 1, you see a cd 1, and a cd 2.", None)
    assert ex.next_action() == "take cd 1 from cabinet 1"
    ex.observe("take cd 1 from cabinet 1", "You pick up the cd 1 from the cabinet 1.", None)
    ex.observe("go to shelf 1", "On the shelf 1, you see nothing.", None)
    ex.observe("put cd 1 in/on shelf 1", "You put the cd 1 in/on the shelf 1.", None)
    it = ex.intent()
    assert it["kind"] == "return" and it["action"] == "go to cabinet 1" and it["object"] == "cd 2"
    task = "You see a cabinet 1, a shelf 1, a desk 1.\n\nYour task is to: put two cd in shelf."
    steps = [step("go to cabinet 1", "On the cabinet 1, you see a cd 1, and a cd 2."),
             step("take cd 1 from cabinet 1", "You pick up the cd 1 from the cabinet 1."),
             step("go to shelf 1", "On the shelf 1, you see nothing."),
             step("put cd 1 in/on shelf 1", "You put the cd 1 in/on the shelf 1.")]
    r = reason_alfworld(state("alfworld", task, steps, it["action"], dict(goal, intent=it)))
    assert r == ("Now I put the cd (1) in/on shelf 1. Next, I need to find the second cd. "
                 "I saw a cd (2) in/on cabinet 1 before, so I go to cabinet 1.")


def test_alfworld_gives_up_after_searching_everything():
    ex = SearchExpert(HEAT, ["cabinet 1"], {"mug": ["cabinet 1"]})
    ex.observe(None, "room", None)
    ex.observe("go to cabinet 1", "On the cabinet 1, you see nothing.", None)
    assert ex.next_action() is None


def test_twc_expert_explores_takes_and_delivers_by_what_it_saw():
    goal = goal_from_gold(["take hat", "move south", "put hat in hat rack", "put sock in chest of drawers"])
    assert goal == {"hat": ("in", "hat rack"), "sock": ("in", "chest of drawers")}
    ex = TWCExpert(goal)
    bedroom = ("You are in the bedroom. In one part of the room you see a chest of drawers that is closed. "
               "There is also a hat. \nTo the South you see the corridor.")
    ex.observe(None, bedroom, ["take hat", "open chest of drawers", "move south"])
    assert ex.intent()["kind"] == "take" and ex.next_action() == "take hat"
    ex.observe("take hat", "You take the hat.", ["open chest of drawers", "move south"])
    it = ex.intent()  # no hat rack seen: explore the corridor
    assert it["kind"] == "explore" and it["action"] == "move south" and it["carrying"] == ["hat"]
    corridor = ("You are in the corridor. In one part of the room you see a hat rack, that has nothing on it. "
                "You also see a sock. \nTo the North you see the bedroom.")
    ex.observe("move south", corridor, ["take sock", "move north"])
    assert ex.next_action() == "take sock"
    ex.observe("take sock", "You take the sock.", ["put hat in hat rack", "move north"])
    assert ex.next_action() == "put hat in hat rack"
    ex.observe("put hat in hat rack", "You put the hat in the hat rack.", ["move north"])
    it = ex.intent()  # the chest of drawers was seen in the bedroom: go back there
    assert it["kind"] == "deliver" and it["action"] == "move north" and it["room"] == "bedroom"
    ex.observe("move north", bedroom.replace("There is also a hat. ", ""), ["open chest of drawers", "move south"])
    assert ex.next_action() == "open chest of drawers"
    ex.observe("open chest of drawers", "You open the chest of drawers. It's empty inside.", [])
    assert ex.next_action() == "put sock in chest of drawers"


def test_twc_reasoning_names_only_what_was_seen():
    task = ("You are in the bedroom. In one part of the room you see a chest of drawers that is closed. "
            "There is also a hat. \nTo the South you see the corridor.\n\nYour task is to pick up objects, then "
            "place them in their usual locations in the environment.")
    info = {"game": "twc", "belongs": {"hat": "hat rack"},
            "intent": {"kind": "take", "action": "take hat", "object": "hat", "receptacle": "hat rack"}}
    r = reason_twx(state("twx", task, [], "take hat", info))
    assert r == ("My task is to put the objects that are out of place in their usual locations. I see the hat "
                 "here, out of place: it usually belongs in the hat rack. So I take the hat.")
    info["intent"] = {"kind": "explore", "action": "move south", "direction": "south", "next_room": "corridor",
                      "room": "corridor", "carrying": ["hat"]}
    r = reason_twx(state("twx", task, [step("take hat", "You take the hat.")], "move south", info))
    assert r == ("I carry the hat. I have not seen the hat rack yet, where it would usually go. "
                 "I have not explored the corridor yet, so I move south to look there.")


def test_scienceworld_reasoning_only_names_what_was_seen():
    t = ("This room is called the hallway. You also see:\n\tA door to the kitchen (that is closed)\n\n"
         "Your task is to boil water. First, focus on the substance.")
    assert reason_scienceworld(state("scienceworld", t, [], "open door to kitchen")) == \
        ("The task is to boil water. I have not looked in the kitchen yet. The door to the kitchen is closed, "
         "so I open the door to the kitchen.")
    s = [step("open door to kitchen", "The door is now open."), step("go to kitchen", "You move to the kitchen.")]
    # the gold path picks up a thermometer it has not seen: no thought naming it
    assert reason_scienceworld(state("scienceworld", t, s, "pick up thermometer")) is None
    s.append(step("pick up thermometer", "You move the thermometer to the inventory."))
    s.append(step("pick up metal pot", "You move the metal pot to the inventory."))
    assert reason_scienceworld(state("scienceworld", t, s, "focus on substance in metal pot")) == \
        "The task says to focus on the substance, so I focus on the substance in the metal pot."
    assert reason_scienceworld(state("scienceworld", t, s, "use thermometer in inventory on substance in metal pot")) \
        == "Next I use the thermometer on the substance in the metal pot."


def test_expert_teacher_without_expert_fails_the_episode_and_can_skip_reasoning():
    t = ExpertTeacher()
    (d,) = t.act([state("wikiqa", "Question: x", [], None)])
    assert d.error and "no expert action" in d.error
    (d,) = ExpertTeacher(reasoning=False).act([state("alfworld", ROOM, [], "go to shelf 1", HEAT)])
    assert d.action == "go to shelf 1" and d.reason is None
    (d,) = t.act([state("plugin", "x", [], "say[1]", {"expert_reason": "because"})])
    assert d.reason == "because"


def test_alfworld_expert_never_repeats_an_action_that_did_nothing():
    ex = SearchExpert(HEAT, ["cabinet 1", "shelf 1"], {"mug": ["cabinet 1", "shelf 1"]})
    ex.observe(None, "room", None)
    assert ex.next_action() == "go to cabinet 1"
    ex.observe("go to cabinet 1", "Nothing happens.", None)
    assert ex.next_action() == "go to shelf 1"  # cabinet 1 counts as searched
    ex.observe("go to shelf 1", "On the shelf 1, you see a mug 1.", None)
    ex.observe("take mug 1 from shelf 1", "Nothing happens.", None)
    assert ex.next_action() is None  # the same take would do nothing again: give up, do not loop
