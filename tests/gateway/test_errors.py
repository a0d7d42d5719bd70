"""The one table of expected errors and the one function that answers them
(gateway/errors.py): status, body, request id and Retry-After; Sanic's own errors mapped onto
ours; anything else a 503 with its traceback logged."""

from __future__ import annotations

import json
import logging

import pytest
from sanic import exceptions as sanic_errors

from gateway import errors


def answer(error: errors.WebhookError, request_id: str = "") -> tuple[int, object, dict[str, str]]:
    response = errors.respond(error, request_id)
    return response.status, json.loads(response.body or b""), dict(response.headers)


@pytest.mark.parametrize(("error_class", "status"), list(errors.HTTP_STATUS.items()))
def test_every_expected_error_has_its_status_and_one_body(
    error_class: type[errors.WebhookError], status: int
) -> None:
    code, body, headers = answer(error_class("why"), "req-1")
    assert code == status
    assert body == {"error": error_class.kind, "reason": "why"}
    assert headers["X-Request-Id"] == "req-1"
    assert ("Retry-After" in headers) == (status == 503)


def test_retry_after_is_the_errors_own_or_the_default_for_503() -> None:
    _, _, limited = answer(errors.RateLimited("slow down", retry_after=7))
    assert limited["Retry-After"] == "7"
    _, _, unavailable = answer(errors.UpstreamUnavailable("statusd away"))
    assert unavailable["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
    assert "X-Request-Id" not in unavailable


def test_a_subclass_answers_with_its_nearest_listed_base() -> None:
    class Forged(errors.Unauthenticated):
        pass

    assert errors.http_status(Forged("no")) == 401
    assert errors.http_status(errors.WebhookError("?")) == 400


@pytest.mark.parametrize(
    ("sanic_error", "kind", "status"),
    [
        (sanic_errors.NotFound("no route"), "not_found", 404),
        (sanic_errors.MethodNotAllowed("PUT", "PUT", ["GET"]), "method_not_allowed", 405),
        (sanic_errors.BadRequest("bad header"), "bad_request", 400),
        (sanic_errors.PayloadTooLarge("too big"), "too_large", 413),
        (sanic_errors.RequestTimeout("Request Timeout"), "request_timeout", 408),
        (sanic_errors.ExpectationFailed("teapot"), "bad_request", 417),
    ],
)
def test_sanic_errors_are_mapped_onto_ours(sanic_error: Exception, kind: str, status: int) -> None:
    error = errors.expected(sanic_error, body_limit=100)
    assert (error.kind, errors.http_status(error)) == (kind, status)
    assert error.reason


def test_sanic_too_large_names_the_limit() -> None:
    error = errors.expected(sanic_errors.PayloadTooLarge("x"), body_limit=100)
    assert error.reason == "body is larger than 100 bytes"


def test_an_expected_error_is_itself() -> None:
    error = errors.Malformed("bad")
    assert errors.expected(error, body_limit=100) is error


def test_anything_else_is_logged_and_answered_503(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.errors"):
        error = errors.expected(RuntimeError("a bug"), body_limit=100, where="POST /x")
    assert isinstance(error, errors.UpstreamUnavailable)
    assert errors.http_status(error) == 503
    assert "POST /x" in caplog.text
    assert "RuntimeError: a bug" in caplog.text


def test_the_authentication_failure_behind_an_answer() -> None:
    failed = errors.Unauthenticated("bad", label="stale")
    limited = errors.RateLimited("too many", retry_after=1)
    limited.__cause__ = failed  # as `raise ... from failed` sets it
    assert errors.authentication_failure(limited) is failed
    assert errors.authentication_failure(failed) is failed
    assert errors.authentication_failure(errors.RateLimited("too many")) is None
    assert errors.authentication_failure(errors.Malformed("x")) is None
    assert errors.authentication_failure(None) is None
