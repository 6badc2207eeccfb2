"""WebShop's reward against hand-worked goals and products (no data files needed)."""

from __future__ import annotations

import pytest

pytest.importorskip("rapidfuzz", reason="WebShop's reward needs the webshop extra (rapidfuzz)")

from sadcli.envs import webshop_reward  # noqa: E402
from sadcli.envs.webshop_reward import (  # noqa: E402
    attribute_matches,
    fuzzy,
    normalize_color,
    option_matches,
    reward,
    title_nouns,
    type_reward,
)

GOAL = {
    "attributes": ["tea tree", "natural ingredients"],
    "goal_options": {"scent": "bright citrus", "size": "3 ounce (pack of 1)"},
    "price_upper": 20.0,
    "query": "deodorant",
    "product_category": "Beauty & Personal Care › Personal Care › Deodorants & Antiperspirants › Deodorant",
    "name": "Bright Citrus Deodorant Stick by Earth Mama",
}
PRODUCT = {
    "Title": "Bright Citrus Deodorant Stick by Earth Mama",
    "BulletPoints": ["Aluminum free", "Safe for sensitive skin"],
    "Description": "A gentle stick for every day.",
    "Attributes": ["tea tree", "natural ingredients", "cruelty free"],
    "query": "deodorant",
    "product_category": GOAL["product_category"],
    "options": {"scent": ["bright citrus", "calming lavender"], "size": ["3 ounce (pack of 1)", "3-ounce (2-pack)"]},
}
CHOSEN = {"scent": "bright citrus", "size": "3 ounce (pack of 1)"}


@pytest.fixture(autouse=True)
def offline_nouns(monkeypatch):
    """The hand-worked type rewards use the offline noun finder, even where a spaCy model is installed."""
    monkeypatch.setattr(webshop_reward, "_spacy_model", lambda: None)
    webshop_reward.title_nouns.cache_clear()
    yield
    webshop_reward.title_nouns.cache_clear()


def test_full_match_is_one():
    r, parts = reward(PRODUCT, GOAL, 10.99, CHOSEN)
    # (2 attributes + 2 options + price) / (2 + 2 + 1), times r_type 1
    assert r == 1.0 and parts["r_type"] == 1.0 and parts["r_price"] is True


def test_wrong_option_loses_one_fifth():
    r, parts = reward(PRODUCT, GOAL, 10.99, {"scent": "calming lavender", "size": "3 ounce (pack of 1)"})
    assert r == pytest.approx(4 / 5) and parts["r_option"] == pytest.approx(1 / 2)
    # a missing option choice counts as unmatched too
    assert reward(PRODUCT, GOAL, 10.99, {"scent": "bright citrus"})[0] == pytest.approx(4 / 5)
    # no options chosen at all: only attributes and price
    assert reward(PRODUCT, GOAL, 10.99, {})[0] == pytest.approx(3 / 5)


def test_over_price_loses_the_price_point():
    r, parts = reward(PRODUCT, GOAL, 25.0, CHOSEN)
    assert r == pytest.approx(4 / 5) and parts["r_price"] is False
    assert reward(PRODUCT, GOAL, 20.0, CHOSEN)[0] == 1.0  # "lower than" is inclusive in WebShop's code


def test_wrong_type_zeroes_or_halves_the_reward():
    lamp = dict(PRODUCT, Title="Garden Hose Reel Cart", query="hoses",
                product_category="Patio, Lawn & Garden › Watering Equipment › Hoses")
    # no shared noun with the goal's title: r_type 0, whatever else matches
    t = type_reward(lamp, GOAL)
    assert t["title_score"] == 0.0 and t["r_type"] == 0.0 and reward(lamp, GOAL, 10.0, CHOSEN)[0] == 0.0
    # the goal title's nouns (offline finder: "bright" and "by" are not nouns)
    assert title_nouns(GOAL["name"]) == ("citrus", "deodorant", "stick", "earth", "mama")
    # one of 5 shared (0.2 is not > 0.2), other query and category: r_type 0.5
    other = dict(lamp, Title="Citrus Garden Hose")
    t = type_reward(other, GOAL)
    assert t["title_score"] == pytest.approx(1 / 5) and t["r_type"] == 0.5
    assert reward(other, GOAL, 10.0, CHOSEN)[0] == pytest.approx(0.5)
    # the same query rescues the type (1.0) as long as some noun is shared
    assert type_reward(dict(other, query="deodorant"), GOAL)["r_type"] == 1.0
    # two shared category levels rescue it too
    cat = dict(other, product_category="Beauty & Personal Care › Personal Care › Shaving")
    assert type_reward(cat, GOAL)["category_match"] and type_reward(cat, GOAL)["r_type"] == 1.0


def test_attribute_matching_fuzzy_and_in_text():
    p = dict(PRODUCT, Attributes=["natural ingredient"], Description="Made with tea tree oil.")
    # "natural ingredient" ~ "natural ingredients" (token-set ratio > 85); "tea tree" found in the description
    assert fuzzy("natural ingredient", "natural ingredients") > 85
    assert attribute_matches(p, ["tea tree", "natural ingredients"]) == 2
    assert attribute_matches(dict(p, Description=""), ["tea tree", "natural ingredients"]) == 1
    assert attribute_matches(dict(p, Attributes=["cruelty free"], Description=""), ["long lasting"]) == 0


def test_options_colour_normalization_and_exact_sizes():
    assert normalize_color("black forest") == "black" and normalize_color("violet lavender") == "lavender"
    assert normalize_color("webshop") == "webshop"
    p = dict(PRODUCT, Title="Shirt", BulletPoints=[], Description="")
    # colours compare by their base colour
    assert option_matches(p, ["black forest"], {"color": "black"}) == 1
    # sizes must match exactly: "x-large" is not "large" even though the fuzzy ratio is high
    assert fuzzy("large", "x-large") > 85
    assert option_matches(p, ["large"], {"size": "x-large"}) == 0
    assert option_matches(p, ["large"], {"size": "large"}) == 1
    # a non-size option matches fuzzily
    assert option_matches(p, ["pack of 12"], {"style": "12 pack of"}) == 1


def test_human_goal_options_are_a_list():
    goal = dict(GOAL, goal_options=["bright citrus"])
    assert reward(PRODUCT, goal, 10.0, {"scent": "bright citrus"})[0] == 1.0
    # (2 + 0 + 1) / (2 + 1 + 1)
    assert reward(PRODUCT, goal, 10.0, {"scent": "calming lavender"})[0] == pytest.approx(3 / 4)
