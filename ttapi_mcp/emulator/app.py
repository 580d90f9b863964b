"""The Emulator: state (options, log, faults, jobs, files) and the request dispatcher.

One catch-all route dispatches by path so that unknown paths and wrong methods answer in
the shape of the path's family, and every request, whatever its outcome, is logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import editjson, gptjobs, handlers
from .account import Account
from .faults import (
    DroppedResponse,
    FaultQueue,
    malformed_json_response,
    status_fault_response,
    truncated_b64_response,
)
from .images import Upload
from .jobs import JobManager
from .models import EmulatorOptions, Fault, HookDelivery, RequestRecord
from .results import FileStore
from .shapes import (
    ApiError,
    blocked_response,
    error_response,
    family_of,
    json_response,
    unauthorized_response,
)

API_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "/v1/images/generations": ("E1", ("POST",)),
    "/v1/images/edits": ("E2", ("POST",)),
    "/openai/v1/images/generations": ("E3", ("POST",)),
    "/openai/4o-image/generations": ("E4", ("POST",)),
    "/openai/4o-image/fetch": ("E5", ("GET", "POST")),
    "/openai/gpt/generations": ("A1", ("POST",)),
    "/openai/gpt/fetch": ("A2", ("GET", "POST")),
    "/midjourney/v1/info": ("M1", ("GET", "POST")),
}
API_ROUTE_NAMES = tuple(name for name, _ in API_ROUTES.values())
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SECRET_HEADERS = ("tt-api-key", "authorization")


def _mask_headers(request: Request) -> dict[str, str]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name in SECRET_HEADERS:
        if name in headers:
            value = headers[name]
            headers[name] = "Bearer ***" if value.lower().startswith("bearer ") else "***"
    return headers


class Emulator:
    """A stand-in for TTAPI that serves the routes of the wire contract."""

    def __init__(self, options: EmulatorOptions | None = None) -> None:
        self.options = options if options is not None else EmulatorOptions()
        self._defaults = self.options.model_copy(deep=True)
        self.base_url: str | None = None
        self.log: list[RequestRecord] = []
        self.arrivals: list[RequestRecord] = []
        """Every request as soon as it arrives (``log`` has it only once answered)."""
        self._log_lock = threading.Lock()
        self.faults = FaultQueue()
        self.files = FileStore()
        self.jobs = JobManager(self.files, lambda: self.options, self._record)
        self.account = Account(lambda: self.options, self.jobs.ended)
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=ALL_METHODS)])

    # -- Python API -------------------------------------------------------------------------

    @property
    def hook_deliveries(self) -> list[HookDelivery]:
        return self.jobs.hook_deliveries

    def add_fault(self, fault: Fault) -> None:
        """Apply `fault` to the next `fault.count` requests of its route."""
        self.faults.add(fault)

    def api_requests(self, route: str | None = None) -> list[RequestRecord]:
        """Logged requests of one route, or of all API routes (E1–E5, A1–A2) when None."""
        if route is None:
            return [r for r in list(self.log) if r.route in API_ROUTE_NAMES]
        return [r for r in list(self.log) if r.route == route]

    def arrived(self, route: str) -> list[RequestRecord]:
        """Requests of one route that reached the emulator, answered or still in progress."""
        return [r for r in list(self.arrivals) if r.route == route]

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()
            self.arrivals.clear()

    def reset(self) -> None:
        """Forget log, faults, jobs and files; restore the options given at construction."""
        self.clear_log()
        self.faults.clear()
        self.jobs.reset()
        self.account.reset()
        self.files.clear()
        for name in type(self._defaults).model_fields:
            setattr(self.options, name, getattr(self._defaults, name))

    def _record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self.log.append(record)

    # -- HTTP -------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        key = request.headers.get("tt-api-key", "").strip()
        if not key:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        return bool(key) and (not self.options.api_keys or key in self.options.api_keys)

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        if path.startswith("/_emulator/") or path == "/_emulator":
            record = RequestRecord(method=request.method, path=path, route="admin",
                                   headers=_mask_headers(request),
                                   query=dict(request.query_params))
            response = await self._admin(request, record)
        else:
            entry = API_ROUTES.get(path)
            route = entry[0] if entry else ("download" if path.startswith("/files/") else
                                            "unknown")
            record = RequestRecord(method=request.method, path=path, route=route,  # type: ignore[arg-type]
                                   headers=_mask_headers(request),
                                   query=dict(request.query_params))
            with self._log_lock:
                self.arrivals.append(record)
            try:
                response = await self._handle(request, record)
            except ApiError as err:
                response = error_response(err, family_of(path))
            except ClientDisconnect:
                # The client gave up (e.g. its read time-out) before the body was read; the
                # request still counts, so retry tests can see it. 499: nginx's "client closed".
                response = Response(status_code=499)
        record.status = response.status_code
        self._record(record)
        return response

    async def _handle(self, request: Request, record: RequestRecord) -> Response:
        path, method, route = record.path, request.method, record.route
        if route == "unknown":
            raise ApiError(404, f"Invalid URL ({method} {path})", code=None)
        allowed = ("GET", "HEAD") if route == "download" else API_ROUTES[path][1]
        if method not in allowed:
            raise ApiError(405, f"Method {method} not allowed on {path}; use "
                                f"{' or '.join(allowed)}.", code=None,
                           headers={"Allow": ", ".join(allowed)})
        if route != "download" and self.options.latency_seconds:
            await asyncio.sleep(self.options.latency_seconds)
        fault = self.faults.take(route)
        if fault is not None:
            record.fault = fault.kind
            if fault.delay:
                await asyncio.sleep(fault.delay)
        if route == "download":
            response = await self._download(path, fault)
        else:
            response = await self._api(request, record, fault)
        if fault is None:
            return response
        if fault.kind == "drop":
            return DroppedResponse(response)
        if fault.kind == "malformed_json" and route != "download":
            return malformed_json_response(response)
        if fault.kind in ("truncated_b64", "truncated_image") and response.status_code < 300:
            return truncated_b64_response(response, cut_image=fault.kind == "truncated_image")
        return response

    async def _download(self, path: str, fault: Fault | None) -> Response:
        if fault is not None and fault.kind == "status" and fault.status is not None:
            return status_fault_response(fault, "text")
        return await handlers.download(self, path.removeprefix("/files/"), fault)

    async def _api(self, request: Request, record: RequestRecord, fault: Fault | None) -> Response:
        route = record.route
        body: dict[str, Any] = {}
        fields: list[tuple[str, Any]] = []
        parse_error: ApiError | None = None
        if route == "E2":
            ctype = request.headers.get("content-type", "")
            if ctype.lower().startswith("multipart/form-data"):
                async with request.form(max_files=64, max_fields=256) as form:
                    for key, value in form.multi_items():
                        if isinstance(value, UploadFile):
                            data = await value.read()
                            fields.append((key, Upload(key, value.filename, value.content_type,
                                                       data)))
                            record.files.append((key, value.filename, value.content_type,
                                                 len(data)))
                        else:
                            fields.append((key, value))
                            record.form[key] = value
            elif ctype.lower().startswith("application/json"):
                try:  # §11.5: the JSON form, GPT models only
                    body = await self._read_json(request, record)
                except ApiError as err:
                    parse_error = err
            else:
                await self._read_json(request, record)
                parse_error = ApiError(400, "Send the edit as multipart/form-data (images as "
                                            "file parts) or as JSON with image_url entries.")
        elif request.method == "POST":
            try:
                body = await self._read_json(request, record)
            except ApiError as err:
                parse_error = err
        if fault is not None and fault.kind == "status" and fault.status is not None:
            return status_fault_response(fault, family_of(record.path))
        if not self._authorized(request):
            return unauthorized_response()
        if fault is not None and fault.kind == "account_blocked":
            return blocked_response()
        if parse_error is not None:
            raise parse_error
        if route == "E1":
            return await handlers.generations(self, request, body, fault)
        if route == "E2":
            if body:
                fields = await editjson.json_edit_parts(self, body)
            return await handlers.edits(self, request, fields, fault)
        if route == "E3":
            return await handlers.legacy_dalle3(self, request, body, fault)
        if route == "E4":
            return await handlers.submit_4o(self, request, body)
        if route == "A1":
            return await gptjobs.submit_gpt(self, request, body)
        if route == "A2":
            return await gptjobs.fetch_gpt(self, request, body, fault)
        if route == "M1":
            return json_response(self.account.info())
        return await handlers.fetch_4o(self, request, body, fault)

    async def _read_json(self, request: Request, record: RequestRecord) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            if record.route in ("E5", "A2", "M1"):
                return {}
            raise ApiError(400, "The request body is empty; send a JSON object.")
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"We could not parse the JSON body of your request: {exc}.") \
                from exc
        record.json = parsed
        if not isinstance(parsed, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return parsed

    async def _admin(self, request: Request, record: RequestRecord) -> Response:
        """`/_emulator/*`: faults, log, options and reset for tests and demos (no auth)."""
        action = (request.method, request.url.path.removeprefix("/_emulator"))
        try:
            if action == ("POST", "/faults"):
                body = await self._read_json(request, record)
                self.add_fault(Fault.model_validate(body))
                return json_response({"ok": True})
            if action == ("GET", "/log"):
                return json_response([dataclasses.asdict(r) for r in list(self.log)])
            if action == ("DELETE", "/log"):
                self.clear_log()
                return json_response({"ok": True})
            if action == ("POST", "/reset"):
                self.reset()
                return json_response({"ok": True})
            if action == ("GET", "/options"):
                return json_response(self.options.model_dump())
            if action == ("POST", "/options"):
                body = await self._read_json(request, record)
                for name, value in body.items():
                    setattr(self.options, name, value)
                return json_response(self.options.model_dump())
            if action == ("GET", "/hooks"):
                return json_response([dataclasses.asdict(h) for h in self.hook_deliveries])
        except (ValidationError, ValueError, ApiError) as exc:
            return Response(f"Invalid admin request: {exc}", status_code=400,
                            media_type="text/plain")
        return Response(f"Unknown admin route {action[0]} {action[1]}", status_code=404,
                        media_type="text/plain")
