"""The structured result every tool returns: a pydantic model, so it becomes the
tool's outputSchema and structuredContent. It lives in the service layer because the
service builds it; the server only renders it as MCP content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ttapi_mcp.previews import Preview

PreviewMode = Literal["sheet", "thumbnail", "full", "none"]
Status = Literal["completed", "partial", "pending", "failed"]


class SavedImage(BaseModel):
    """One image saved on this machine."""

    index: int = Field(description="Position of the image in the upstream answer (0-based).")
    id: str = Field(description="Image id in this server's store.")
    path: str = Field(description="Absolute path of the saved file.")
    uri: str = Field(description="MCP resource URI, usable as an edit_image input.")
    mime: str = Field(description="MIME type sniffed from the bytes.")
    width: int | None = None
    height: int | None = None
    bytes: int = Field(description="File size in bytes.")
    source_url: str | None = Field(
        default=None, description="Upstream URL the image was downloaded from, if any."
    )
    url_expires_at: str | None = Field(
        default=None, description="When source_url stops working (ISO 8601, UTC), if known."
    )
    revised_prompt: str | None = Field(
        default=None, description="The prompt as rewritten upstream, if it was."
    )


class MissingImage(BaseModel):
    """An image that was paid for but could not be decoded or downloaded."""

    index: int
    error: str


class NextCall(BaseModel):
    """The exact tool call to make next (for pending jobs)."""

    tool: str
    arguments: dict[str, Any]


class CostEstimate(BaseModel):
    """What the call was estimated to cost before it was sent (TTAPI publishes no prices)."""

    estimate_quota: float = Field(description="Estimated quota for the whole call (1 USD = "
                                  "100 quota); an estimate from the server's price table.")
    estimate_usd: float = Field(description="The same estimate in US dollars.")
    basis: str = Field(description="How the estimate was made (price per image, count).")


class ImageToolResult(BaseModel):
    """Structured result shared by generate_image, edit_image, gpt4o_image and fetch_job."""

    status: Status = Field(
        description=(
            "completed: all images saved; partial: some images missing (see missing); "
            "pending: job still running, call next_call; failed: the job failed (see message)."
        )
    )
    model: str
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The effective parameters sent upstream."
    )
    images: list[SavedImage] = Field(default_factory=list)
    missing: list[MissingImage] = Field(default_factory=list)
    usage: dict[str, Any] | None = Field(default=None, description="Token usage (GPT models).")
    quota: float | None = Field(default=None, description="Quota charged (gpt4o_image jobs).")
    cost: CostEstimate | None = Field(
        default=None, description="The cost estimate made before sending (see usage/quota "
        "for what TTAPI reported).")
    warning: str | None = Field(default=None, description="A one-line warning, e.g. a low "
                                "TTAPI balance.")
    job_id: str | None = None
    job_status: str | None = Field(default=None, description="Upstream job status, if a job.")
    message: str | None = None
    next_call: NextCall | None = None
    _previews: dict[tuple[str, int], Future[Preview]] = PrivateAttr(default_factory=dict)
    """Thumbnails started while saving, by (image id, long edge); never serialised."""

    def add_previews(self, edge: int | None, previews: dict[str, Future[Preview]]) -> None:
        """Keep thumbnails started while saving, so the tool result need not redo them."""
        if edge:
            for image_id, future in previews.items():
                self._previews[(image_id, edge)] = future

    def preview_for(self, image_id: str, edge: int) -> Future[Preview] | None:
        return self._previews.get((image_id, edge))
