"""Budget strings: what parse_budget accepts, what it rejects, and format_params."""

from __future__ import annotations

import pytest

from autolor2c.errors import UserError
from autolor2c.search.space import format_params, parse_budget

GOOD = [
    ("0.1M", 100_000),
    ("100K", 100_000),
    ("100k", 100_000),
    ("100000", 100_000),
    ("1e5", 100_000),
    ("1E5", 100_000),
    ("1e+5", 100_000),
    ("1.5m", 1_500_000),
    ("1.5M", 1_500_000),
    ("100_000", 100_000),
    ("1,000,000", 1_000_000),
    ("1_000_000", 1_000_000),
    ("  20K  ", 20_000),
    ("\t0.02M\n", 20_000),
    (".5K", 500),
    ("5.", 5),
    ("1e-5M", 10),
    ("1", 1),
    ("0.6", 1),          # rounds to the nearest parameter...
    ("2.5", 2),          # ...ties go down, so rounding never raises the bound
    ("98.3K", 98_300),
    ("2B", 2_000_000_000),
    ("1.5e2k", 150_000),
]


@pytest.mark.parametrize("text,expected", GOOD)
def test_good_budgets(text, expected):
    got = parse_budget(text)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("text,backbone,expected", [
    ("0.5%", 22_713_216, 113_566),   # 113566.08
    ("1%", 1_000_000, 10_000),
    ("100%", 10, 10),
    ("0.1%", 1_000_000, 1_000),
    (" 0.35% ", 1_000, 3),           # 3.5: ties go down
    ("0.36%", 1_000, 4),
])
def test_percent_budgets(text, backbone, expected):
    assert parse_budget(text, backbone_params=backbone) == expected


def test_non_string_numbers_are_accepted():
    assert parse_budget(100_000) == 100_000
    assert parse_budget(1e5) == 100_000


BAD = [
    "", "   ", "-5", "-0.1M", "0", "0.0", "0K", "abc", "1.5.2M", "10MB", "nan", "NaN", "inf", "-inf",
    "%", "200%", "100.5%", "0.4", "0.5", "1_0", "1,5M", "1,00,000", "e5", ".", "+5", "1e5%", "M", "1 000",
    "0x10", "1e99999", "1e5000", "5 K M", "1K%", "1__000",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_budgets(text):
    with pytest.raises(UserError) as e:
        parse_budget(text, backbone_params=1_000_000)
    msg = str(e.value)
    assert repr(text) in msg and "\n" not in msg


def test_bad_message_shape():
    with pytest.raises(UserError, match=r"^bad budget '10MB': expected a number of parameters such as 0\.1M"):
        parse_budget("10MB")


def test_percent_needs_backbone():
    with pytest.raises(UserError, match="0.5%.*backbone"):
        parse_budget("0.5%")
    with pytest.raises(UserError, match="0.5%"):
        parse_budget("0.5%", backbone_params=0)


def test_percent_rounding_to_zero_is_rejected():
    with pytest.raises(UserError, match="0.001%"):
        parse_budget("0.001%", backbone_params=1000)


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}])
def test_bad_types(bad):
    with pytest.raises(UserError):
        parse_budget(bad)


@pytest.mark.parametrize("n,text", [
    (0, "0"), (512, "512"), (999, "999"), (1000, "1.0K"), (98_300, "98.3K"), (98_304, "98.3K"),
    (999_949, "999.9K"), (999_960, "1.00M"), (1_200_000, "1.20M"), (22_713_216, "22.71M"),
    (7_000_000_000, "7.00B"), (-1500, "-1.5K"), (1536.4, "1.5K"),
])
def test_format_params(n, text):
    assert format_params(n) == text


@pytest.mark.parametrize("n", [1, 512, 1000, 98_300, 1_200_000, 7_000_000_000])
def test_format_then_parse_is_close(n):
    assert abs(parse_budget(format_params(n)) - n) <= 0.001 * n
