"""The two upstream job routes as small objects, chosen by the job's kind.

The 4o job machinery (submit, record, watch, fetch, save once, recover, hooks) is shared;
only the HTTP calls differ: the 4o-image route (kind "4o") and the async GPT route of
§11.6 (kind "gpt"). The kind is recorded in the job row, so a fetch after a restart
knows which route to ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ttapi_mcp.api import FourOJob, FourOSubmitRequest, GptJobRequest, TTAPIClient
from ttapi_mcp.catalog.asyncjobs import MODEL_4O, kind_of_model


@dataclass(frozen=True)
class JobRoute:
    """How to submit and fetch one kind of upstream job."""

    kind: str
    request_route: str  # as recorded in the requests table
    label: str
    unrecorded_model: str  # for a job found here that no call of ours submitted

    async def submit(self, client: TTAPIClient, sent: Mapping[str, Any]) -> str:
        if self.kind == "4o":
            return await client.submit_4o(FourOSubmitRequest(**sent))
        return await client.submit_gpt(GptJobRequest(**sent))

    async def fetch(self, client: TTAPIClient, job_id: str) -> FourOJob:
        if self.kind == "4o":
            return await client.fetch_4o(job_id)
        return await client.fetch_gpt(job_id)


FOUR_O = JobRoute(kind="4o", request_route="E4", label="GPT-4o image job",
                  unrecorded_model=MODEL_4O)  # the route serves one model
GPT = JobRoute(kind="gpt", request_route="A1", label="GPT image job",
               unrecorded_model="unknown (async GPT route)")  # its job object names none
ROUTES = {route.kind: route for route in (FOUR_O, GPT)}


def route_of_kind(kind: str | None) -> JobRoute | None:
    return ROUTES.get(kind or "")


def route_of_params(params: Mapping[str, Any]) -> JobRoute:
    """The route a job with these recorded parameters was submitted to."""
    model = params.get("model")
    return ROUTES[kind_of_model(model if isinstance(model, str) else None)]


def model_of(params: Mapping[str, Any]) -> str:
    model = params.get("model")
    return model if isinstance(model, str) and model else MODEL_4O
