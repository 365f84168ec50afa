import math

from order_workflow.rustfmt import display, round_half_away_from_zero, saturating_i64


def test_display_writes_floats_as_rust_does():
    # Expected values printed by Rust 1.95's `format!("{x}")`.
    assert display(24.98) == "24.98"
    assert display(3.0) == "3"
    assert display(0.0) == "0"
    assert display(-0.0) == "-0"
    assert display(1e21) == "1000000000000000000000"
    assert display(1e-7) == "0.0000001"
    assert display(2.5e15) == "2500000000000000"


def test_two_decimals_round_exact_ties_half_to_even_as_rust_does():
    for x, expected in [(0.125, "0.12"), (0.375, "0.38"), (0.625, "0.62"), (12.125, "12.12"), (2.675, "2.67")]:
        assert f"{x:.2f}" == expected


def test_round_half_away_from_zero_differs_from_round():
    assert round_half_away_from_zero(0.5) == 1.0
    assert round_half_away_from_zero(2.5) == 3.0
    assert round_half_away_from_zero(-0.5) == -1.0
    assert round_half_away_from_zero(1212.5) == 1213.0
    assert round_half_away_from_zero(-2.4) == -2.0


def test_saturating_i64_saturates_and_reads_nan_as_zero():
    assert saturating_i64(math.nan) == 0
    assert saturating_i64(1e30) == 2**63 - 1
    assert saturating_i64(-1e30) == -(2**63)
    assert saturating_i64(12.9) == 12
