"""The grounding checker catches the untrue thoughts found in the audit (issue 10) and passes true ones."""

from __future__ import annotations

from grounding_checker import check_record, clauses, instances, phrases, sentences, stats

ALF_TASK = ("You are in the middle of a room. Looking quickly around you, you see a cabinet 2, a cabinet 1, "
            "a desk 2, a desk 1, a shelf 1, and a microwave 1.\n\nYour task is to: put two cd in shelf.")
TWC_TASK = ("You are in the bedroom. In one part of the room you see a chest of drawers that is closed. "
            "There is also a clean blue socks. \nTo the South you see the corridor.\n\n"
            "Your task is to pick up objects, then place them in their usual locations in the environment.")


def rec(task, steps, id="x"):
    return {"id": id, "task": task, "steps": [{"reason": r, "action": a, "observation": o} for r, a, o in steps]}


def rules(record):
    return sorted({v.rule for v in check_record(record)})


def test_parsing_helpers():
    assert instances("in cabinet (1-3), desk (2, 4) and shelf 1") == \
        ["cabinet 1", "cabinet 2", "cabinet 3", "desk 2", "desk 4", "shelf 1"]
    assert "chest of drawers" in phrases("it usually belongs in the chest of drawers")
    assert phrases("I see the clean blue socks here") == ["clean blue socks"]
    assert sentences("Now I find a mug (3). Next, I need to take it.") == \
        ["Now I find a mug (3).", "Next, I need to take it."]
    assert len(clauses("I have not explored the corridor yet, so I move south")) == 2


def test_true_alfworld_thoughts_pass():
    r = rec(ALF_TASK, [
        ("To solve the task, I need to find and take the first cd, then put it in/on shelf. A cd is more likely "
         "to appear in desk (1-2), cabinet (1-2). I can check one by one, starting with desk 1.",
         "go to desk 1", "On the desk 1, you see a cd 1, and a cd 2."),
        ("Now I find the first cd (1). Next, I need to take it.", "take cd 1 from desk 1",
         "You pick up the cd 1 from the desk 1."),
        ("Now I take the first cd (1). Next, I need to put it in/on shelf 1.", "go to shelf 1",
         "On the shelf 1, you see nothing."),
        (None, "put cd 1 in/on shelf 1", "You put the cd 1 in/on the shelf 1."),
        ("Now I put the cd (1) in/on shelf 1. Next, I need to find the second cd. I saw a cd (2) in/on desk 1 "
         "before, so I go to desk 1.", "go to desk 1", "On the desk 1, you see a cd 2."),
    ])
    assert check_record(r) == []
    s = stats([r])
    assert s["steps"] == 5 and s["with_reason"] == 4 and s["distinct"] == 4


def test_audit_findings_in_alfworld_are_caught():
    seen = [(None, "go to desk 2", "On the desk 2, you see a cd 2."),
            (None, "go to desk 1", "On the desk 1, you see a cd 1.")]
    # "I saw another cd in/on desk 2, so I go there" followed by go to shelf 1
    bad = rec(ALF_TASK, seen + [("I saw a cd (2) in/on desk 2, so I go there.", "go to shelf 1", "x")])
    assert "plan-mismatch" in rules(bad)
    # a search "starting with" a receptacle not in the list it just gave (and not in the room)
    bad = rec(ALF_TASK, [("A cd is more likely to appear in desk (1-2). I can check one by one, starting with "
                          "toaster 1.", "go to toaster 1", "x")])
    assert {"plan-mismatch", "unseen-entity"} <= set(rules(bad))
    # "Now I find the second creditcard" in a put-two-CDs task
    bad = rec(ALF_TASK, seen + [("Now I find the second creditcard (1). Next, I need to take it.",
                                 "take cd 1 from desk 1", "x")])
    assert {"wrong-object", "false-claim"} <= set(rules(bad))
    # "Now I cool an apple" after a heat action
    heat = ALF_TASK.replace("put two cd in shelf", "heat some cd and put it in shelf")
    bad = rec(heat, seen + [(None, "take cd 1 from desk 1", "You pick up the cd 1 from the desk 1."),
                            (None, "go to microwave 1", "The microwave 1 is closed."),
                            (None, "heat cd 1 with microwave 1", "You heat the cd 1 using the microwave 1."),
                            ("Now I cool the cd (1). Next, I need to put it in/on shelf 1.", "go to shelf 1", "x")])
    assert "false-claim" in rules(bad)
    # a place read from the game state, never shown
    bad = rec(ALF_TASK, [("The cd is in drawer 3.", "go to desk 1", "x")])
    assert "unseen-entity" in rules(bad)
    # "have not seen another" although one was shown
    bad = rec(ALF_TASK, seen + [(None, "take cd 1 from desk 1", "ok"),
                                ("I have not seen another cd yet.", "go to cabinet 1", "x")])
    assert "false-negative" in rules(bad)
    # a plan the next action does not carry out
    bad = rec(ALF_TASK, seen + [("Now I find a cd (1). Next, I need to take it.", "go to shelf 1", "x")])
    assert "plan-mismatch" in rules(bad)
    # reaching a receptacle that shares the agent's spot is `examine` (ALFWorld offers no `go to` there);
    # examining another one is not what was said
    took = seen + [(None, "take cd 1 from desk 1", "You pick up the cd 1 from the desk 1.")]
    for nxt, ok in (("examine shelf 1", True), ("examine desk 2", False), ("go to shelf 1", True)):
        r = rec(ALF_TASK, took + [("Now I take a cd (1). Next, I need to put it in/on shelf 1.", nxt, "x")])
        assert ("plan-mismatch" not in rules(r)) == ok, nxt


def test_audit_findings_in_twc_are_caught_and_true_thoughts_pass():
    good = rec(TWC_TASK, [
        ("I see the clean blue socks here, out of place: they usually belong in the chest of drawers. "
         "So I take the clean blue socks.", "take clean blue socks", "You take the clean blue socks."),
        ("I carry the clean blue socks. The chest of drawers is here and closed, so I open the chest of drawers.",
         "open chest of drawers", "You open the chest of drawers."),
    ])
    assert check_record(good) == []
    # "the hat rack is not here, so I move south" with no hat rack ever shown
    bad = rec(TWC_TASK, [("The hat rack is in the corridor, so I move south.", "move south", "x")])
    assert "unseen-entity" in rules(bad)
    # a commonsense clause may name what was not seen; exploration too; a false "not seen" is caught
    ok = rec(TWC_TASK, [("Hats usually belong in a hat rack. I have not seen a hat rack yet, so I move south "
                         "to look there.", "move south", "x")])
    assert check_record(ok) == []
    bad = rec(TWC_TASK, [(None, "look around", TWC_TASK),
                         ("I have not seen the chest of drawers yet.", "move south", "x")])
    assert "false-negative" in rules(bad)
    # stated plan vs next action; claims about the room and the inventory
    assert "plan-mismatch" in rules(rec(TWC_TASK, [("I have not explored the corridor yet, so I move south.",
                                                    "move north", "x")]))
    assert "false-claim" in rules(rec(TWC_TASK, [("I carry the clean blue socks.", "move south", "x")]))
    assert "false-claim" in rules(rec(TWC_TASK, [(None, "open chest of drawers", "You open the chest of drawers."),
                                                 ("The chest of drawers is here and closed, so I open the chest "
                                                  "of drawers.", "open chest of drawers", "x")]))
    assert "false-claim" in rules(rec(TWC_TASK, [("I saw the chest of drawers in the corridor, so I move south.",
                                                  "move south", "x")]))
