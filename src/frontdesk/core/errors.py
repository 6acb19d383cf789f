"""Errors with a stable machine-readable code, and the handlers that render them as JSON.

Every API error has the shape {"error": {"code": ..., "message": ..., "details"?: ...}}.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)


class FrontdeskError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class NotFound(FrontdeskError):
    """Also what another workspace's ids answer: never confirm that they exist."""

    status_code = 404
    code = "not_found"


class Unauthorized(FrontdeskError):
    status_code = 401
    code = "unauthorized"


class Forbidden(FrontdeskError):
    status_code = 403
    code = "forbidden"


class Conflict(FrontdeskError):
    status_code = 409
    code = "conflict"


class InvalidInput(FrontdeskError):
    status_code = 422
    code = "validation_error"


class ServiceUnavailable(FrontdeskError):
    status_code = 503
    code = "unavailable"


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = Field(default=None, description="for 422: [{field, message}, ...]")


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a body that could not be read"},
    401: {"model": ErrorOut, "description": "no or bad token"},
    403: {"model": ErrorOut, "description": "the role does not allow it"},
    404: {"model": ErrorOut, "description": "unknown id, or an id of another workspace"},
    409: {"model": ErrorOut, "description": "conflicts with what is stored"},
    422: {"model": ErrorOut, "description": "invalid input: details name each field and why"},
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


_UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's words for it


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    fields = []
    for err in exc.errors():
        kind = err.get("type", "")
        message = err.get("msg", "invalid")
        if kind == "json_invalid":  # located at a character offset, not a field
            field = "body"
            reason = (err.get("ctx") or {}).get("error")
            message = f"not valid JSON: {reason}" if reason else "not valid JSON"
        else:
            field = ".".join(str(p) for p in err.get("loc", ()))
            message = message.removeprefix("Value error, ")
        fields.append({"field": field, "message": message, "type": kind})
    return fields


def _validation_response(fields: list[dict[str, Any]]) -> JSONResponse:
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    message = f"Invalid input: {first['field']}: {first['message']}"
    return JSONResponse(error_body("validation_error", message, fields), 422)


def is_data_error(exc: DBAPIError) -> bool:
    """The database refused a value itself (SQLSTATE class 22, "data exception": out of
    range, bad encoding...), as opposed to failing."""
    if isinstance(exc, DataError):
        return True
    for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(state, str) and state.startswith("22"):
            return True
        if type(cause).__name__ == "DataError":  # asyncpg's client-side refusal
            return True
    return False


def is_unique_violation(exc: DBAPIError) -> bool:
    """Two requests raced for one unique key (a team name, a membership...)."""
    if not isinstance(exc, IntegrityError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return state == "23505" or "UNIQUE constraint failed" in str(exc.orig)


class RejectUnstorableUrls:
    """A NUL character in the path or query string can name nothing stored and makes
    PostgreSQL raise: refuse it at the door (422), whatever the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            where = ("query" if b"%00" in query or b"\x00" in query
                     else "path" if "\x00" in scope.get("path", "") else None)
            if where is not None:
                response = _validation_response([{
                    "field": where, "message": "contains a NUL character (%00)",
                    "type": "value_error"}])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FrontdeskError)
    async def _domain(_: Request, exc: FrontdeskError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(_field_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
            # Not UTF-8, or not JSON at all: invalid input like any other.
            return _validation_response([{"field": "body", "type": "json_invalid",
                                          "message": "not valid JSON in UTF-8"}])
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), exc.status_code, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # A last line of defence: validation should have refused such a value already.
        if is_data_error(exc):
            log.warning("the database refused a value of %s %s: %s", request.method,
                        request.url.path, exc.orig)
            return JSONResponse(error_body(
                "invalid_value", "A value in the request cannot be stored (out of range or "
                "not valid text)"), 422)
        if is_unique_violation(exc):
            return JSONResponse(error_body(
                "conflict", "Something with the same name or key was stored meanwhile; "
                "reload and try again"), 409)
        raise exc  # a real failure: the catch-all below logs it and answers 500

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; it was logged."), 500
        )
