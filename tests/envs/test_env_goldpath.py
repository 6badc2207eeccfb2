"""GoldPath: the expert plan follows the agent while it stays on the gold path, and stops when it leaves it."""

from sadcli.envs.base import GoldPath


def test_gold_path_follows_and_leaves():
    g = GoldPath(["look around", "open door", "go north"], start=1)
    assert g.plan() == ["open door", "go north"]
    g.advance("open door")
    assert g.next_action() == "go north"
    g.advance("go south")  # off the path: the plan no longer applies
    assert g.plan() is None and g.next_action() is None
    g.advance("go north")
    assert g.plan() is None


def test_gold_path_end_and_empty():
    g = GoldPath(["a"])
    g.advance("a")
    assert g.plan() is None
    assert GoldPath().next_action() is None
