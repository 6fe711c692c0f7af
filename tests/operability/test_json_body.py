"""Decoding a JSON request body once (app/pipeline/json_body.py): the values and the verdicts
are the standard library's, whichever decoder did the work."""

from __future__ import annotations

import json

import pytest

from app.pipeline.body_limits import check_body
from app.pipeline.json_body import NOT_DECODED, loads

SAME_AS_THE_STANDARD_LIBRARY = [
    b'{"a": 1, "b": [1.5, -0.0, 1e-7, 1e22, true, false, null], "c": {"d": "e"}}',
    b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
    b'{"u64": 18446744073709551615, "digits_in_text": "12345678901234567890"}',
    b'{"tiny": 1e-400, "precise": 0.30000000000000004, "exp": 1E2}',
    b"[1e400, -1e400]",  # infinite once decoded, as the standard library has it
    '{"text": "naïve ☃ \\u00e9 \\ud83d\\ude00 \\" \\\\ \\/ \\n"}'.encode(),
    b'{"dup": 1, "dup": 2}',
    b"\xef\xbb\xbf" + b'{"after": "a byte-order mark"}',
    '{"utf16": true}'.encode("utf-16"),
    b" [1, 2] ",
    b'"just a string"',
    b"3",
]


@pytest.mark.parametrize("raw", SAME_AS_THE_STANDARD_LIBRARY)
def test_values_are_the_standard_librarys(raw: bytes) -> None:
    value, _ = loads(raw)
    expected = json.loads(raw)
    assert value == expected
    assert json.dumps(value) == json.dumps(expected)  # int stays int, float stays float


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"a": NaN}', b"[Infinity]", b"[1,]", b'{"a" 1}', b"\xff"],
)
def test_what_is_not_json_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)


def test_a_lone_surrogate_is_decoded_for_the_text_rule_to_name_it() -> None:
    value, strict = loads(b'{"a": ["x\\ud800"]}')
    assert value == {"a": ["x\ud800"]}
    assert not strict
    problem, decoded = check_body(b'{"a": ["x\\ud800"]}', True)
    assert problem is not None and problem.attr == "a.0"
    assert decoded is NOT_DECODED


def test_a_body_that_keeps_the_rules_is_handed_on_decoded() -> None:
    rows = [{"uuid": str(i), "properties": {"p": [i, {"q": None}]}} for i in range(500)]
    raw = json.dumps({"table": "events", "rows": rows}).encode()
    assert check_body(raw, True) == (None, {"table": "events", "rows": rows})
    assert check_body(raw, False) == (None, NOT_DECODED)


@pytest.mark.parametrize("levels", [64, 65])
def test_depth_is_counted_below_wide_levels(levels: int) -> None:
    deep = '{"a":' * (levels - 3) + "1" + "}" * (levels - 3)
    rows = [{"p": {"q": 1}} for _ in range(300)] + [{"p": json.loads(deep)}]
    problem, _ = check_body(json.dumps({"rows": rows}).encode(), True)
    if levels == 64:
        assert problem is None
    else:
        assert problem is not None and problem.code == "parse_error"
