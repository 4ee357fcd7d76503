"""Parameter budgets: parse budget strings (``0.1M``, ``100K``, ``1e5``, ``0.5%``) and format counts.

A budget is an upper bound on trainable adapter parameters. Fractional results (``1.5K`` is exact,
``0.0015%`` of a backbone usually is not) are rounded to the nearest integer with ties going DOWN
(``2.5`` -> ``2``), so rounding never lifts the bound; a result that rounds to 0 is rejected.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_DOWN, Decimal, InvalidOperation

from autolor2c.errors import UserError

__all__ = ["parse_budget", "format_params", "MAX_BUDGET"]

# Anything above this is a typo (and Decimal('1e999999999') -> int would hang).
MAX_BUDGET = 10**15

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "%": None}

# Digits, optionally grouped by 3 with '_' or ',' (``100_000``, ``1,000,000``), an optional fraction,
# an optional exponent, then at most one suffix. No sign: negatives and ``+`` are rejected.
_NUMBER = re.compile(
    r"""^(?P<int>\d+|\d{1,3}(?:[_,]\d{3})+)?
        (?:\.(?P<frac>\d+)?)?
        (?:[eE](?P<exp>[+-]?\d+))?
        (?P<suffix>[kKmMbB%]?)$""",
    re.VERBOSE,
)

_HINT = "expected a number of parameters such as 0.1M, 100K, 1e5 or 0.5%"


def parse_budget(text: str, backbone_params: int | None = None) -> int:
    """Parse a parameter budget into an int.

    Accepts plain numbers (``100000``, ``100_000``, ``100,000``, ``1e5``), K/M/B suffixes in any case
    (``100K``, ``0.1M``, ``1.5m``) and percentages of ``backbone_params`` (``0.5%``, at most 100%).
    Raises :class:`UserError` naming the string for anything else, for zero, and for a result that
    rounds to 0 parameters.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UserError(_HINT, param="budget", value=text)
    raw = text if isinstance(text, str) else repr(text)
    s = raw.strip()
    m = _NUMBER.match(s)
    # The regex allows an empty mantissa (all groups optional): require digits before the exponent.
    if m is None or (m.group("int") is None and m.group("frac") is None):
        raise UserError(_HINT, param="budget", value=raw)
    mantissa = (m.group("int") or "0").replace("_", "").replace(",", "") + "." + (m.group("frac") or "0")
    exp = m.group("exp") or "0"
    if len(exp.lstrip("+-")) > 4:  # 1e99999: not a budget, and Decimal would make a huge int
        raise UserError(_HINT, param="budget", value=raw)
    try:
        value = Decimal(mantissa) * (Decimal(10) ** int(exp))
    except InvalidOperation:  # pragma: no cover - the regex only lets numbers through
        raise UserError(_HINT, param="budget", value=raw) from None
    suffix = m.group("suffix").lower()
    if suffix == "%":
        if value > 100:
            raise UserError("a percentage of the backbone must be at most 100%", param="budget", value=raw)
        if backbone_params is None:
            raise UserError("a percentage needs the backbone size; give an absolute budget such as 0.1M instead",
                            param="budget", value=raw)
        if isinstance(backbone_params, bool) or not isinstance(backbone_params, int) or backbone_params < 1:
            raise UserError(f"backbone size {backbone_params!r} is not a positive integer", param="budget", value=raw)
        value = value * backbone_params / 100
    else:
        value = value * _SUFFIX[suffix]
    if value <= 0:
        raise UserError("the budget must be more than 0 parameters", param="budget", value=raw)
    if value > MAX_BUDGET:
        raise UserError(f"more than {MAX_BUDGET:.0e} parameters is not a budget", param="budget", value=raw)
    n = int(value.to_integral_value(rounding=ROUND_HALF_DOWN))
    if n < 1:
        raise UserError("that is less than one parameter", param="budget", value=raw)
    return n


def format_params(n: int | float) -> str:
    """A short readable count: ``512``, ``98.3K``, ``1.20M``, ``7.00B`` (parse_budget reads them back)."""
    n = int(round(n))
    sign, a = ("-", -n) if n < 0 else ("", n)
    if a < 1000:
        return f"{sign}{a}"
    # Pick the unit after rounding so 999_960 prints as 1.00M, not 1000.0K.
    if round(a / 1e3, 1) < 1000:
        return f"{sign}{a / 1e3:.1f}K"
    if round(a / 1e6, 2) < 1000:
        return f"{sign}{a / 1e6:.2f}M"
    return f"{sign}{a / 1e9:.2f}B"
