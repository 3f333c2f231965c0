"""``--where`` texts: attribute conditions pass (rebuilt), anything that could run SQL is refused."""

import pytest

from neurofit.schemas.restriction import RestrictionError, parse_where


@pytest.mark.parametrize(
    "text, sql",
    [
        ("seed = 1", "seed = 1"),
        ("seed in (1,2) and model_fn like 'mylab.%'", "seed IN (1, 2) AND model_fn LIKE 'mylab.%'"),
        ("trainer_hash = '5d1e' ", "trainer_hash = '5d1e'"),
        ("(seed = 1 or seed=2) and not seed != 3", "(seed = 1 OR seed = 2) AND NOT seed != 3"),
        ("seed NOT IN (4) AND comment = 'it''s'", "seed NOT IN (4) AND comment = 'it''s'"),
        ("score >= -0.5e-1 AND host IS NOT NULL", "score >= -0.5e-1 AND host IS NOT NULL"),
    ],
)
def test_attribute_conditions_are_rebuilt(text, sql):
    assert parse_where(text) == sql


@pytest.mark.parametrize(
    "text, where",
    [
        ("seed = 1))); DROP TABLE x; --", "';"),
        ("seed = 1; DELETE FROM x", "';"),
        ("seed = 1 -- the rest", "'--"),
        ("seed = 1 /* hidden */", "'/*"),
        ("seed = 1 # mysql comment", "'#"),
        ("seed = sleep(5)", "'sleep'"),
        ("seed = pg_sleep (5)", "'pg_sleep'"),
        ("seed IN (SELECT seed FROM x)", "'SELECT'"),
        ("seed = 'a\\' OR 1=1 --'", "\"'a"),
        ('seed = "1"', "'\"1\"'"),
        ("`seed` = 1", "'`seed`"),
        ("seed = 1)", "')'"),
        ("(seed = 1", "the end"),
        ("seed = 1 OR", "the end"),
        ("seed", "the end"),
        ("seed = 1 seed = 2", "'seed'"),
        ("", "empty"),
    ],
)
def test_anything_but_a_restriction_is_refused_naming_the_spot(text, where):
    with pytest.raises(RestrictionError) as caught:
        parse_where(text)
    assert where in str(caught.value), str(caught.value)


def test_overlong_and_deeply_nested_texts_are_refused():
    with pytest.raises(RestrictionError, match="at most"):
        parse_where("seed = 1 OR " * 500 + "seed = 2")
    with pytest.raises(RestrictionError, match="nested"):
        parse_where("(" * 30 + "seed = 1" + ")" * 30)
