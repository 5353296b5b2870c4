"""Version order, majors and ranges (kato/versions.py)."""

from __future__ import annotations

import pytest

from kato.errors import UsageError
from kato.versions import Range, parse, parse_range


def test_versions_sort_by_numbers_then_a_suffix_before_none() -> None:
    texts = ["2.0.0", "1.2.1-broken", "1.0.0", "1.2.0", "1.10.0", "1.2.1", "1.1.0"]
    ordered = [str(v) for v in sorted(parse(t) for t in texts)]
    assert ordered == ["1.0.0", "1.1.0", "1.2.0", "1.2.1-broken", "1.2.1", "1.10.0", "2.0.0"]
    assert parse("1.2") == parse("1.2.0") or parse("1.2").numbers == parse("1.2.0").numbers
    assert parse("2.0.0").major == 2 and parse("1.2.1-broken").major == 1


def test_a_version_without_numbers_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match="'nightly' is not a version kato can order"):
        parse("nightly")


def test_ranges_include_min_and_exclude_below() -> None:
    supported = Range("0.1.0", "1.0.0")
    assert supported.contains("0.1.0") and supported.contains("0.9.9")
    assert not supported.contains("1.0.0") and not supported.contains("0.0.9")
    assert Range().contains("42") and str(supported) == ">= 0.1.0, < 1.0.0"


def test_a_bad_range_names_its_field() -> None:
    problems: list[str] = []
    parse_range({"min": "soon"}, "r.yaml: kato", problems)
    parse_range({"max": "1"}, "r.yaml: kato", problems)
    assert problems == [
        "r.yaml: kato.min: must be a version such as '0.1.0', not 'soon'",
        "r.yaml: kato: must be a mapping of min and/or below (versions)",
    ]
