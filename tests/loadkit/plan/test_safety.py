"""check_host: literal allow-list, loopback-only default, malformed URLs refused. Only strings are
checked here: nothing is resolved or contacted."""

from __future__ import annotations

import pytest

from loadkit.plan.safety import UnsafeHostError, check_host


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.1",
        "https://127.8.9.10:443/path?q=1",
        "http://localhost:5000",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "http://user:pw@127.0.0.1:1/",
    ],
)
def test_loopback_is_allowed_by_default(url):
    check_host(url, None)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8080",
        "http://example.com",
        "http://localhost.example.com",
        "http://0.0.0.0:80",
        "http://127.1",
    ],
)
def test_anything_else_is_refused_by_default(url):
    with pytest.raises(UnsafeHostError) as info:
        check_host(url, None)
    message = str(info.value)
    assert "refusing" in message and "allow_hosts" in message and "loopback" in message


def test_explicit_list_is_complete_and_literal():
    check_host("http://localhost:8000", ("localhost",))
    check_host("http://Staging.Internal:8000", ("staging.internal",))
    check_host("http://[::1]:1", ("[::1]",))
    check_host("http://[::1]:1", ("::1",))
    with pytest.raises(UnsafeHostError) as info:
        check_host("http://127.0.0.1:8000", ("localhost",))  # loopback left out of an explicit list
    message = str(info.value)
    assert "127.0.0.1" in message and "safety.allow_hosts" in message and "localhost" in message
    with pytest.raises(UnsafeHostError):
        check_host("http://api.staging.internal", ("staging.internal",))  # no suffix matching


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "not a URL"),
        ("127.0.0.1:8080", "http:// or https://"),
        ("ftp://127.0.0.1", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://", "no host"),
        ("http://127.0.0.1:notaport", "not a valid URL"),
        ("http://127.0.0.1:99999", "not a valid URL"),
        ("http://[::1", "not a valid URL"),
    ],
)
def test_malformed_urls_are_refused(url, fragment):
    with pytest.raises(UnsafeHostError, match="refusing") as info:
        check_host(url, None)
    assert fragment in str(info.value)


def test_is_a_value_error():
    assert issubclass(UnsafeHostError, ValueError)
