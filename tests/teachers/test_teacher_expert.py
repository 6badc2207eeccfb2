"""Expert reasoning templates: informative, grounded in what the agent saw, absent on routine steps."""

from __future__ import annotations

from sadcli.agent.loop import EpisodeState
from sadcli.envs.base import PromptTemplate, Task
from sadcli.teachers.expert import ExpertTeacher, group_receptacles, reason_alfworld, reason_scienceworld, reason_twx

ROOM = ("You are in the middle of a room. Looking quickly around you, you see a cabinet 2, a cabinet 1, "
        "a countertop 1, a microwave 1, a fridge 1, a sinkbasin 1, and a shelf 1.\n\n"
        "Your task is to: heat some mug and put it in cabinet.")
HEAT = {"task_type": "pick_heat_then_place_in_recep", "object": "mug", "receptacle": "cabinet", "toggle": "",
        "object_places": ["cabinet", "countertop", "shelf", "sinkbasin"], "toggle_places": []}


def state(env, task_text, steps, expert, info=None, plan=None):
    return EpisodeState(task=Task(env, "s", "g"), env=env, prompt=PromptTemplate("x"), task_text=task_text,
                        steps=steps, expert=expert, expert_plan=plan, state=info or {})


def step(action, obs, reason=None):
    return {"reason": reason, "action": action, "observation": obs}


def test_group_receptacles():
    assert group_receptacles(["cabinet 2", "cabinet 1", "countertop 1", "drawer 1", "drawer 3"]) == \
        "cabinet (1-2), countertop (1), drawer (1, 3)"


def test_alfworld_plan_search_find_take_heat_put():
    r0 = reason_alfworld(state("alfworld", ROOM, [], "go to countertop 1", HEAT))
    assert r0.startswith("To solve the task, I need to find and take a mug, then heat it with microwave, "
                         "then put it in/on cabinet.")
    # the likely places come from the room and the game's type rules, and the next target is named
    assert "cabinet (1-2), countertop (1), sinkbasin (1), shelf (1)" in r0 and "starting with countertop 1." in r0
    assert "microwave (1)" not in r0 and "fridge" not in r0.split("more likely")[1]
    steps = [step("go to countertop 1", "On the countertop 1, you see a apple 1.")]
    assert reason_alfworld(state("alfworld", ROOM, steps, "go to cabinet 1", HEAT)) is None  # routine
    steps.append(step("go to cabinet 1", "On the cabinet 1, you see a mug 3, and a plate 1."))
    assert reason_alfworld(state("alfworld", ROOM, steps, "take mug 3 from cabinet 1", HEAT)) == \
        "Now I find a mug (3). Next, I need to take it."
    steps.append(step("take mug 3 from cabinet 1", "You pick up the mug 3 from the cabinet 1."))
    assert reason_alfworld(state("alfworld", ROOM, steps, "go to microwave 1", HEAT)) == \
        "Now I take a mug (3). Next, I need to go to microwave and heat it."
    steps.append(step("go to microwave 1", "The microwave 1 is closed."))
    assert reason_alfworld(state("alfworld", ROOM, steps, "heat mug 3 with microwave 1", HEAT)) is None
    steps.append(step("heat mug 3 with microwave 1", "You heat the mug 3 using the microwave 1."))
    assert reason_alfworld(state("alfworld", ROOM, steps, "go to cabinet 2", HEAT)) == \
        "Now I heat a mug (3). Next, I need to put it in/on cabinet 2."


def test_alfworld_two_objects_remembers_what_it_saw():
    info = dict(HEAT, task_type="pick_two_obj_and_place", object="cd", receptacle="shelf")
    steps = [step("go to cabinet 1", "On the cabinet 1, you see a cd 1, and a cd 2."),
             step("take cd 1 from cabinet 1", "You pick up the cd 1 from the cabinet 1."),
             step("go to shelf 1", "On the shelf 1, you see nothing."),
             step("put cd 1 in/on shelf 1", "You put the cd 1 in/on the shelf 1.")]
    r = reason_alfworld(state("alfworld", ROOM, steps, "go to cabinet 1", info))
    assert r == ("Now I put the first cd in/on shelf 1. Next, I need to find the second cd. "
                 "I saw another cd in/on cabinet 1, so I go there.")
    steps.append(step("go to cabinet 1", "On the cabinet 1, you see a cd 2."))
    assert reason_alfworld(state("alfworld", ROOM, steps, "take cd 2 from cabinet 1", info)) == \
        "Now I find the second cd (2). Next, I need to take it."


def test_alfworld_light_task_uses_lamp_seen_earlier():
    info = dict(HEAT, task_type="look_at_obj_in_light", object="book", toggle="desklamp", receptacle="")
    steps = [step("go to shelf 1", "On the shelf 1, you see a desklamp 1."),
             step("go to cabinet 1", "On the cabinet 1, you see a book 2."),
             step("take book 2 from cabinet 1", "You pick up the book 2 from the cabinet 1.")]
    r = reason_alfworld(state("alfworld", ROOM, steps, "go to shelf 1", info))
    assert r == ("Now I take a book (2). Next, I need to find a desklamp. "
                 "I saw a desklamp in/on shelf 1 before, so I go there.")


def test_twx_reasoning_names_where_things_belong():
    plan = ["take wet towel", "move north", "open bathroom cabinet", "put wet towel in bathroom cabinet"]
    r = reason_twx(state("twx", "room", [], "take wet towel", plan=plan))
    assert r == "The usual place of the wet towel is the bathroom cabinet, not here. I need to pick up the wet towel."
    steps = [step("take wet towel", "You take the wet towel.")]
    r = reason_twx(state("twx", "room", steps, "move north", {"inventory": "Inventory:\n  a wet towel\n"}, plan[1:]))
    assert r == ("I carry the wet towel, whose usual place is the bathroom cabinet. The bathroom cabinet is not here, "
                 "so I move north.")
    steps.append(step("move north", "You are in the bathroom."))
    r = reason_twx(state("twx", "room", steps, "open bathroom cabinet", plan=plan[2:]))
    assert r == "The bathroom cabinet is closed, so I open it before putting the wet towel in it."


def test_scienceworld_reasoning():
    t = "This room is called the hallway.\n\nYour task is to boil water. First, focus on the substance."
    assert reason_scienceworld(state("scienceworld", t, [], "open door to kitchen")) == \
        "The task is to boil water. I start with: open door to kitchen."
    s = [step("open door to kitchen", "The door is now open.")]
    assert reason_scienceworld(state("scienceworld", t, s, "focus on water")) == \
        "The water is what the task is about, so I focus on it."
    assert reason_scienceworld(state("scienceworld", t, s, "go to kitchen")) is None


def test_expert_teacher_without_expert_fails_the_episode_and_can_skip_reasoning():
    t = ExpertTeacher()
    (d,) = t.act([state("wikiqa", "Question: x", [], None)])
    assert d.error and "no expert action" in d.error
    (d,) = ExpertTeacher(reasoning=False).act([state("alfworld", ROOM, [], "go to shelf 1", HEAT)])
    assert d.action == "go to shelf 1" and d.reason is None
    (d,) = t.act([state("plugin", "x", [], "say[1]", {"expert_reason": "because"})])
    assert d.reason == "because"
