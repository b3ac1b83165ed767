"""Twilio's signature algorithm, against Twilio's own published test vectors."""

from __future__ import annotations

import pytest

from bot.alerts.signature import compute_signature, is_valid_signature

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]


def test_published_vector() -> None:
    assert compute_signature(TOKEN, URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert is_valid_signature(TOKEN, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed over :443, checked against the portless URL
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # signed over :80
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
)
def test_published_port_vectors(url: str, signature: str) -> None:
    assert is_valid_signature(TOKEN, url, PARAMS, signature)


def test_published_vector_with_repeated_values() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert compute_signature(TOKEN, URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_usage_trigger_shaped_vectors_from_the_reference_notes() -> None:
    url = "https://bot.example.com/twilio/usage-trigger"
    params = [
        ("AccountSid", "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("UsageTriggerSid", "UTbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        ("DateFired", "Sun, 04 Oct 2026 12:00:00 +0000"),
        ("Recurring", "monthly"),
        ("UsageCategory", "totalprice"),
        ("TriggerBy", "price"),
        ("TriggerValue", "60"),
        ("CurrentValue", "60.52"),
        (
            "UsageRecordUri",
            "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Usage/Records/ThisMonth.json?Category=totalprice",
        ),
        ("IdempotencyToken", "tok-1"),
    ]
    assert compute_signature(TOKEN, url, params) == "OI/sH8JgVW6VM//TWO0Tc64o52c="
    assert is_valid_signature(TOKEN, url, params, "dcrbXm6yxvPZ3Eg7z4jdGuqTEI4=")
    from urllib.parse import urlencode

    assert is_valid_signature(TOKEN, url + "?" + urlencode(params), [], "c2rG/C+E11ABUFfsdpEx3kZvslQ=")


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        (URL, PARAMS, ""),
        (URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8"),  # truncated
        (URL, [*PARAMS[:-1], ("Caller", "+10000000000")], "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # tampered param
        (URL.replace("foo=1", "foo=2"), PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # tampered query
        (URL.replace("myapp", "other"), PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # replayed to another path
        ("https://mycompany.com:abc/x", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # unparsable port
        (URL, PARAMS, "é" * 28),  # non-ASCII header
    ],
)
def test_wrong_signatures_fail(url: str, params: list[tuple[str, str]], signature: str) -> None:
    assert not is_valid_signature(TOKEN, url, params, signature)
