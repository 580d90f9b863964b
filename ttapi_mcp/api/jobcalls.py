"""The short JSON calls: the two job routes (submit, fetch) and the account balance.

Mixed into :class:`~ttapi_mcp.api.client.TTAPIClient`, which owns the transport
(``_api``, retries, error mapping); kept apart so each file has one job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from .account import AccountInfo
from .models import FourOJob, FourOSubmitRequest, GptJobRequest
from .parsing import Call, parse_job, parse_job_id, protocol_error
from .policy import Timeouts


class JobCallsMixin:
    """Job and account calls; needs the client's ``_call``, ``_api`` and ``_succeeded``."""

    _timeouts: Timeouts

    if TYPE_CHECKING:
        def _call(self, route: str, action: str) -> Call: ...

        async def _api(self, call: Call, method: str, path: str, *, read_timeout: float,
                       json_body: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None) -> Any: ...

        def _succeeded(self, call: Call, payload: Any) -> Any: ...

    async def submit_4o(self, request: FourOSubmitRequest) -> str:
        """E4: submit a GPT-4o image job; returns its id. Never resubmitted automatically."""
        return await self._submit_job("E4", "/openai/4o-image/generations",
                                      "GPT-4o image job submission", request.to_wire())

    async def submit_gpt(self, request: GptJobRequest) -> str:
        """A1: submit a GPT image job on the async GPT route; returns its id (§11.6)."""
        return await self._submit_job("A1", "/openai/gpt/generations",
                                      f"{request.model} job submission", request.to_wire())

    async def _submit_job(self, route: str, path: str, action: str, body: dict[str, Any]) -> str:
        call = self._call(route, action)
        payload = await self._api(call, "POST", path, read_timeout=self._timeouts.job,
                                  json_body=body)
        return parse_job_id(self._succeeded(call, payload), call)

    async def fetch_gpt(self, job_id: str, method: Literal["POST", "GET"] = "POST") -> FourOJob:
        """A2: a job of the async GPT route; the job object has the 4o job's shape."""
        return await self._fetch_job("A2", "/openai/gpt/fetch", f"GPT image job fetch ({job_id})",
                                     job_id, method)

    async def fetch_4o(self, job_id: str, method: Literal["POST", "GET"] = "POST") -> FourOJob:
        """E5: the job's current state (POST with JSON by default, or GET with a query)."""
        return await self._fetch_job("E5", "/openai/4o-image/fetch",
                                     f"GPT-4o job fetch ({job_id})", job_id, method)

    async def _fetch_job(
        self, route: str, path: str, action: str, job_id: str, method: Literal["POST", "GET"]
    ) -> FourOJob:
        call = self._call(route, action)
        timeout = self._timeouts.job
        if method == "GET":
            payload = await self._api(
                call, "GET", path, read_timeout=timeout, params={"jobId": job_id}
            )
        else:
            payload = await self._api(
                call, "POST", path, read_timeout=timeout, json_body={"jobId": job_id}
            )
        is_job = isinstance(payload, dict) and ("jobId" in payload or "job_id" in payload)
        return parse_job(payload if is_job else self._succeeded(call, payload), call)

    async def account_info(self) -> AccountInfo:
        """M1: the account's balance, frozen balance and queue limit, in quota (§11.7).

        Read-only, so transient failures are retried; the e-mail is masked on parsing.
        """
        call = self._call("M1", "account balance check")
        payload = await self._api(
            call, "GET", "/midjourney/v1/info", read_timeout=self._timeouts.job
        )
        try:
            return AccountInfo.model_validate(self._succeeded(call, payload))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise protocol_error(call, f"{where}: {first['msg']}") from None
