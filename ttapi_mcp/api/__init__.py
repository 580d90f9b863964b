"""TTAPI over HTTP: request/response models, the client, error mapping and retries.

Knows nothing of MCP; the only file access is streaming uploads and result downloads.
"""

from .account import QUOTA_PER_USD, AccountInfo, mask_email, quota_text
from .b64values import B64Text, decode_base64
from .client import TTAPIClient
from .errors import (
    AccountBlockedError,
    AuthenticationError,
    ConnectionFailedError,
    ContentPolicyError,
    DownloadError,
    GatewayTimeoutError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ResponseTimeoutError,
    TTAPIError,
    UpstreamServerError,
)
from .models import (
    DownloadResult,
    EditRequest,
    FourOJob,
    FourOSubmitRequest,
    GenerationRequest,
    GptJobRequest,
    ImageItem,
    ImagesResponse,
    LegacyDalle3Request,
    UploadFile,
    Usage,
)
from .policy import RetryPolicy, Timeouts

__all__ = [
    "QUOTA_PER_USD",
    "AccountInfo",
    "mask_email",
    "quota_text",
    "AccountBlockedError",
    "AuthenticationError",
    "B64Text",
    "ConnectionFailedError",
    "ContentPolicyError",
    "DownloadError",
    "DownloadResult",
    "EditRequest",
    "FourOJob",
    "FourOSubmitRequest",
    "GatewayTimeoutError",
    "GenerationRequest",
    "GptJobRequest",
    "ImageItem",
    "ImagesResponse",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "LegacyDalle3Request",
    "NotFoundError",
    "ProtocolError",
    "RateLimitError",
    "ResponseTimeoutError",
    "RetryPolicy",
    "TTAPIClient",
    "TTAPIError",
    "Timeouts",
    "UploadFile",
    "UpstreamServerError",
    "Usage",
    "decode_base64",
]
