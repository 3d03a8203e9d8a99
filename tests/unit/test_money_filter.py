"""The panel's `money` filter prints exactly what Django's `floatformat:"2g"` printed, only faster."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template.defaultfilters import floatformat
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.templatetags.money import money


@given(st.decimals(allow_nan=True, allow_infinity=True))
@settings(max_examples=600, deadline=None)
def test_any_decimal_prints_as_floatformat_would(value):
    assert money(value) == floatformat(value, "2g")


@given(st.integers(min_value=-(10**40), max_value=10**40))
@settings(max_examples=300, deadline=None)
def test_any_int_prints_as_floatformat_would(value):
    assert money(value) == floatformat(value, "2g")


@pytest.mark.parametrize(
    "value",
    [
        Decimal("0"),
        Decimal("-0"),
        Decimal("-0.004"),
        Decimal("-0.005"),
        Decimal("0.005"),
        Decimal("2.675"),
        Decimal("1234.5"),
        Decimal("-1234567.891"),
        Decimal("1E+3"),
        Decimal("1E-30"),
        Decimal("9" * 30),
        Decimal("sNaN"),
        1000,
        1.005,
        "0",
        "12.5",
        "not a number",
        None,
        True,
    ],
)
def test_the_edges_and_other_types_print_as_floatformat_would(value):
    assert money(value) == floatformat(value, "2g")


def test_a_lab_amount_prints_grouped_with_two_decimals():
    assert money(Decimal("1234.5")) == "1,234.50"
    assert money(Decimal("-0.001")) == "0.00"
