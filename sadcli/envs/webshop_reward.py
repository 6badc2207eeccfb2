"""WebShop's purchase reward (Yao et al. 2022, §3.1 and Appendix; ``web_agent_site/engine/goal.py``).

For a goal with attributes ``U_att``, options ``U_opt`` and a price upper bound, buying product ``Y``
with the chosen options ``Y_opt`` at price ``p`` earns::

    r = r_type * (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + 1[p <= u_price]) / (|U_att| + |U_opt| + 1)

- an attribute matches when a product attribute is a fuzzy match (token-set ratio > 85) or the attribute
  text occurs in the title, bullet points or description;
- a chosen option matches a goal option by exact value for ``size`` options and by fuzzy match otherwise
  (colors reduced to their base color first), or when its text occurs in the title/bullets/description;
- ``r_type`` is 1 when the product is of the goal's type (same search query, two shared category levels,
  or more than 20% of the goal title's nouns in its title), 0.5 otherwise, 0.1 when fewer than 10% of
  the nouns are shared and 0 when none is.

The fuzzy ratio is ``rapidfuzz``'s token-set ratio with the usual preprocessing (what ``thefuzz`` calls).
Nouns come from spaCy (``en_core_web_lg`` as upstream, or ``en_core_web_sm``) when such a model is
installed; otherwise from a documented offline stand-in — the title's words minus function words, numbers
and the common colour/size/material adjectives (see :func:`title_nouns`). Buying the goal product with the
goal options gets 1.0 under either, since query, category and title then match exactly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

EXACT_MATCH_OPTIONS = ("size",)

# the base colours of WebShop's normalizer, in its order (the first one contained in a value wins)
COLOR_SET = (
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown burgundy "
    "camel camo caramel champagne charcoal cheetah chestnut chocolate christmas coffee cognac copper coral "
    "cranberry cream crystal dark denim eggplant elephant espresso fuchsia gold granite grape graphite grass "
    "gray green grey heather indigo ivory ivy khaki lavender lemon leopard light lilac lime magenta maroon "
    "mauve merlot midnight mint mocha multicolor mushroom mustard natural navy nude olive orange peach pewter "
    "pink plum purple rainbow red rose royal rust sand sapphire seashell silver skull slate steel stone "
    "stonewash sunflower tan taupe teal tiger turquoise violet walnut wheat white wine yellow"
).split()


def normalize_color(value: str) -> str:
    """The first base colour contained in ``value`` (``"black forest"`` -> ``"black"``), else ``value``."""
    for c in COLOR_SET:
        if c in value:
            return c
    return value


def fuzzy(a: str, b: str) -> int:
    """Token-set ratio 0..100 after lower-casing and stripping punctuation (thefuzz's ``token_set_ratio``)."""
    from rapidfuzz import fuzz, utils

    return int(round(fuzz.token_set_ratio(a, b, processor=utils.default_process)))


# ------------------------------------------------------------------------------------------ product type
_FUNCTION_WORDS = frozenset(
    "a an the and or of for with without in on at to from by as is are be it its this that these those "
    "your you our we my me his her their them they he she i not no nor so than too very can will just "
    "into onto over under up down out off about after before between during per plus & x".split())
# adjectives and units that dominate product titles but are never the product type
_NOT_NOUNS = frozenset(
    "new best premium quality high low large small medium big mini extra super ultra soft hard long short "
    "wide slim thin thick light heavy dark bright natural organic free pure fresh easy portable compatible "
    "adjustable durable waterproof non stainless comfortable cute funny perfect fashion fashionable casual "
    "classic modern vintage professional womens mens women's men's kids girls boys unisex pack inch inches oz "
    "ounce ounces lb lbs ml cm mm ft count set pcs pieces piece size"
    .split()) | frozenset(COLOR_SET)
_TOKEN = re.compile(r"[a-z][a-z'\-]*")


@functools.lru_cache(maxsize=1)
def _spacy_model():
    try:
        import spacy
    except ImportError:
        return None
    for name in ("en_core_web_lg", "en_core_web_sm"):
        try:
            return spacy.load(name)
        except Exception:  # noqa: BLE001 - model not installed
            continue
    return None


def noun_parser() -> str:
    """Which noun finder the type reward uses here: a spaCy model's name, or ``"offline"``."""
    nlp = _spacy_model()
    return f"spacy:{nlp.meta.get('name', '?')}" if nlp is not None else "offline"


@functools.lru_cache(maxsize=8192)
def title_nouns(title: str) -> tuple[str, ...]:
    """The nouns of a product title, lower-cased, in order (spaCy NOUN/PROPN when available)."""
    nlp = _spacy_model()
    if nlp is not None:  # pragma: no cover - needs a spaCy model, which this project does not ship
        return tuple(t.text.lower() for t in nlp(title) if t.pos_ in ("NOUN", "PROPN"))
    return tuple(w for w in _TOKEN.findall(title.lower()) if w not in _FUNCTION_WORDS and w not in _NOT_NOUNS)


def type_reward(product: dict, goal: dict) -> dict:
    """``r_type`` and the facts it is made of (query match, category match, title score)."""
    query_match = product.get("query") == goal.get("query")
    cats = {x.strip() for x in str(product.get("product_category", "")).split("›")}
    goal_cats = {x.strip() for x in str(goal.get("product_category", "")).split("›")}
    category_match = len(cats & goal_cats) >= 2
    desired = title_nouns(goal.get("name", ""))
    bought = title_nouns(product.get("Title") or product.get("name", ""))
    title_score = 0.2 if not desired else len(set(bought) & set(desired)) / len(desired)
    r = 1.0 if (query_match or category_match or title_score > 0.2) else 0.5
    if title_score < 0.1:
        r = 0.1
    if title_score == 0.0:
        r = 0.0
    return {"r_type": r, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def _in_text(needle: str, product: dict) -> bool:
    return (needle in str(product.get("Title", "")).lower()
            or needle in " ".join(product.get("BulletPoints") or []).lower()
            or needle in str(product.get("Description", "")).lower())


def attribute_matches(product: dict, attributes: Iterable[str]) -> int:
    """How many goal attributes the product has (fuzzy attribute match, or the text in its page)."""
    have = product.get("Attributes") or []
    n = 0
    for g in attributes:
        if any(fuzzy(p, g) > 85 for p in have) or _in_text(g, product):
            n += 1
    return n


def option_matches(product: dict, goal_options: Iterable[str], chosen: dict[str, str]) -> int:
    """How many chosen options match a goal option (exact for sizes, fuzzy otherwise, or in the text)."""
    goal = [normalize_color(o) for o in goal_options]
    n = 0
    for name, value in chosen.items():
        value = normalize_color(value)
        if name.lower() in EXACT_MATCH_OPTIONS:
            matched = value in goal
        else:
            matched = any(fuzzy(g, value) > 85 for g in goal)
        if matched or _in_text(value, product):
            n += 1
    return n


def reward(product: dict, goal: dict, price: float, chosen: dict[str, str]) -> tuple[float, dict]:
    """The reward (0..1) of buying ``product`` at ``price`` with options ``chosen`` for ``goal``, and its parts.

    ``goal`` holds ``attributes`` (list), ``goal_options`` (dict name -> value, or a list of values),
    ``price_upper``, ``query``, ``product_category`` and ``name`` (the goal product's title).
    """
    t = type_reward(product, goal)
    attrs = list(goal.get("attributes") or [])
    gopts = goal.get("goal_options") or {}
    gvals = list(gopts.values()) if isinstance(gopts, dict) else list(gopts)
    upper = float(goal.get("price_upper", 1e6))
    price_ok = price <= upper if upper > 0 else False
    n_att = attribute_matches(product, attrs)
    n_opt = option_matches(product, gvals, chosen)
    total = (n_att + n_opt + int(price_ok)) / (len(attrs) + len(gvals) + 1)
    r = total * t["r_type"]
    parts = dict(t, r_att=n_att / len(attrs) if attrs else None, r_option=n_opt / len(gvals) if gvals else None,
                 r_price=price_ok)
    return r, parts
