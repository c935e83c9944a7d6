"""The one error envelope every failure uses: {"error": {"message", "type", "code"}} (OpenAI's shape)."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def error_body(status: int, code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"), "code": code}}


def error_response(status: int, code: str, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def _validation_code(err: dict) -> str:
    field = str(err.get("loc", ("", ""))[-1])
    kind = str(err.get("type", ""))
    if field in ("text", "input"):
        if kind == "string_too_long":
            return "input_too_long"
        if kind in ("string_too_short", "missing"):
            return "empty_input"
    if field in ("format", "response_format") and kind == "literal_error":
        return "unsupported_format"
    if kind == "extra_forbidden":
        return "unknown_parameter"
    if kind == "json_invalid":
        return "invalid_json"
    return "invalid_parameter"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.retry_after)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    # FastAPI answers 422 for schema violations; our contract (and OpenAI's) is 400 with a code.
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = (
        f"{where}: {first.get('msg', 'invalid request')}"
        if where
        else str(first.get("msg", "invalid request"))
    )
    return error_response(400, _validation_code(first), message)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


HANDLERS = {
    ApiError: _api_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
}
