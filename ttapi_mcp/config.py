"""One settings model, filled from four layers: defaults < JSON file < environment < flags.

Configuration mistakes are the first thing a newcomer meets, so every problem is
reported at once, naming the key and where its value came from (file, variable
or flag), without a traceback and without ever echoing a secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .keycheck import header_problem

CONFIG_ENV_VAR = "TTAPI_MCP_CONFIG"
ENV_PREFIX = "TTAPI_"
DEFAULT_BASE_URL = "https://api.ttapi.io"
SLOW_CALLS_BASE_URL = "https://api.ttapi.org"
MIB = 1024 * 1024
S3_CLIENT_MISSING = "an s3:// storage needs the S3 client: pip install 'ttapi-mcp[s3]' (obstore)"
MAX_BUDGET = 10_000_000.0
"""Largest budget or threshold accepted, in quota (100,000 USD): anything above is a typo."""

PreviewMode = Literal["sheet", "thumbnail", "full", "none"]
GenerateModel = Literal["gpt-image-1", "gpt-image-1.5", "gpt-image-2", "dall-e-2", "dall-e-3"]
EditModel = Literal["gpt-image-1", "gpt-image-1.5", "gpt-image-2", "dall-e-2"]


def default_output_dir() -> Path:
    """Absolute and predictable: clients often start servers in `/` or a random folder."""
    return platformdirs.user_data_path("ttapi-mcp", appauthor=False) / "images"


class ConfigError(Exception):
    """Raised when the configuration cannot be used; the message is for a person."""


class Settings(BaseModel):
    """Every setting of ttapi-mcp. Environment: TTAPI_<KEY> (upper case)."""

    # hide_input_in_errors: a ValidationError raised outside load_settings must not print
    # a secret either.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    api_key: SecretStr | None = Field(None, description="TTAPI key (TT-API-KEY).")
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description=f"Origin of TTAPI; {SLOW_CALLS_BASE_URL} is TTAPI's gateway for slow "
        "gpt-image-1 calls.",
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    request_timeout: float = Field(120.0, gt=0, description="Read time-out for DALL-E calls.")
    gpt_request_timeout: float = Field(300.0, gt=0, description="Read time-out for GPT models.")
    job_request_timeout: float = Field(30.0, gt=0, description="Read time-out for 4o submit/fetch.")
    download_timeout: float = Field(120.0, gt=0, description="Read time-out for result URLs.")
    max_download_bytes: int = Field(64 * MIB, gt=0, description="Largest result download.")
    retry_max_attempts: int = Field(3, ge=1, le=10, description="Attempts per call, in all.")
    retry_base_delay: float = Field(1.0, ge=0, description="First backoff delay in seconds.")
    retry_max_delay: float = Field(30.0, ge=0, description="Longest backoff/Retry-After.")
    retry_max_total_seconds: float = Field(90.0, gt=0, description="Retry budget per call.")
    output_dir: Path = Field(default_factory=default_output_dir, description="Where images go.")
    database_path: Path | None = Field(
        None, description="SQLite store; default <output_dir>/.ttapi-mcp/store.sqlite3."
    )
    input_roots: list[Path] = Field(
        default_factory=list,
        description="Folders edit_image may read besides output_dir.",
    )
    allow_url_inputs: bool = Field(True, description="Accept http(s) URLs as image inputs.")
    allow_private_urls: bool = Field(
        False, description="Allow URL inputs on loopback/private/link-local addresses."
    )
    max_input_bytes: int = Field(25 * MIB, gt=0, description="Largest input image, in bytes.")
    preview: PreviewMode = Field(
        "sheet", description="Inline preview in tool results (sheet: one contact sheet for "
        "several images).")
    thumbnail_size: int = Field(512, ge=64, le=2048, description="Thumbnail long edge, pixels.")
    default_generate_model: GenerateModel = Field("gpt-image-1", description="generate_image.")
    default_edit_model: EditModel = Field("gpt-image-1", description="edit_image model.")
    dalle3_route: Literal["v1", "legacy"] = Field(
        "v1", description="dall-e-3 via /v1/images/generations or the legacy TTAPI route."
    )
    wait_budget_seconds: float = Field(
        50.0, ge=0, le=3600, description="How long a tool waits before answering 'pending'."
    )
    poll_first_delay: float = Field(
        3.0, ge=0, description="First poll of a gpt4o_image job after submit."
    )
    poll_interval: float = Field(5.0, gt=0, description="Poll interval of a gpt4o_image job.")
    poll_max_interval: float = Field(
        15.0, gt=0, description="Longest poll interval of a gpt4o_image job."
    )
    progress_interval_seconds: float = Field(
        5.0, gt=0, le=5.0, description="Longest gap between progress notifications."
    )
    max_concurrent_requests: int = Field(
        4, ge=1, le=64, description="Concurrent upstream requests; later calls queue in order."
    )
    dedupe_window_seconds: float = Field(
        0.0, ge=0, description="Reuse an identical call's result this long after it ends."
    )
    # Several servers on one store: leases on jobs, and waiting for another server's job.
    lease_seconds: float = Field(
        30.0, ge=0.5, le=3600, description="A server's claim on a job lasts this long unless "
        "renewed; after it, other servers take the job over."
    )
    lease_renew_seconds: float = Field(
        5.0, gt=0, le=600, description="How often leases are renewed and jobs of gone servers "
        "looked for (at most a third of lease_seconds)."
    )
    store_poll_seconds: float = Field(
        0.1, gt=0, le=5.0, description="How often a call waiting for another server's job "
        "checks the store."
    )
    public_base_url: str | None = Field(
        None, description="Public origin of the HTTP server, for TTAPI's job hooks (gpt4o_image)."
    )
    http_host: str = Field("127.0.0.1", description="Streamable HTTP bind address.")
    http_port: int = Field(8000, ge=0, le=65535, description="Streamable HTTP port.")
    http_bearer_token: SecretStr | None = Field(
        None, description="Required to bind HTTP beyond loopback."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Logging.")
    # Streamed results (§11.4): partial images per image by default, 0-3 (GPT models only).
    partial_images: int = Field(
        0, ge=0, le=3, description="Default partial_images for GPT generate/edit calls."
    )
    # JSON edit form: GPT edits whose inputs are all http(s) URLs go as image_url entries.
    edit_json_for_urls: bool = Field(
        False, description="Send GPT edits of http(s) URLs as JSON (TTAPI fetches them)."
    )
    # Account balance (ttapi://account, doctor): 1 USD = 100 quota.
    warn_balance_below: float = Field(
        100.0, ge=0, description="Warn when the TTAPI balance is below this many quota."
    )
    # Costs and budgets: price estimates, spending limits, confirmation of expensive calls.
    prices: dict[str, Any] | None = Field(
        None, description="Overrides of the price table (quota per image), e.g. "
        '{"gpt-image-1": {"high": {"1024x1024": 12}}}; see ttapi://models.'
    )
    budget_per_call: float | None = Field(
        None, ge=0, le=MAX_BUDGET, allow_inf_nan=False,
        description="Most quota one call may be estimated at; unset: no limit.",
    )
    budget_per_day: float | None = Field(
        None, ge=0, le=MAX_BUDGET, allow_inf_nan=False,
        description="Most quota spent or reserved per day (budget_timezone); unset: no limit.",
    )
    budget_per_month: float | None = Field(
        None, ge=0, le=MAX_BUDGET, allow_inf_nan=False,
        description="Most quota spent or reserved per calendar month; unset: no limit.",
    )
    budget_per_user_day: float | None = Field(
        None, ge=0, le=MAX_BUDGET, allow_inf_nan=False,
        description="Most quota one user (OAuth subject) may spend or reserve per day; "
        "unset: no per-user limit.",
    )
    budget_per_user_month: float | None = Field(
        None, ge=0, le=MAX_BUDGET, allow_inf_nan=False,
        description="Most quota one user may spend or reserve per calendar month; unset: no "
        "per-user limit.",
    )
    budget_timezone: str = Field(
        "UTC", description="IANA time zone in which budget days and months begin."
    )
    confirm_above: float | None = Field(
        None, ge=0, le=MAX_BUDGET, allow_inf_nan=False,
        description="Ask the user before a call estimated above this many quota; unset: never.",
    )
    balance_max_age_seconds: float = Field(
        60.0, ge=0, le=3600, description="Read the TTAPI balance before paid calls at most this "
        "often, and refuse a call it cannot cover; 0: never read it.",
    )

    @field_validator("budget_per_call", "budget_per_day", "budget_per_month",
                     "budget_per_user_day", "budget_per_user_month", "confirm_above",
                     mode="before")
    @classmethod
    def _quota_amount(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number of quota (1 USD = 100 quota), not true/false")
        return value

    @field_validator("prices", mode="before")
    @classmethod
    def _valid_prices(cls, value: Any) -> Any:
        from ttapi_mcp.catalog.prices import merge_prices

        if value is not None:
            merge_prices(value)
        return value

    @field_validator("budget_timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from ttapi_mcp.periods import zone

        zone(value)
        return value

    # Sign-in (OAuth 2.1 protected resource, HTTP mode) and operations.
    oauth_issuer: str | None = Field(
        None, description="Authorization server (issuer URL) whose JWT access tokens HTTP "
        "requests must carry; replaces http_bearer_token."
    )
    oauth_resource_url: str | None = Field(
        None, description="This server's resource URL, the tokens' audience; default "
        "<public_base_url>/mcp."
    )
    oauth_generate_scope: str = Field(
        "images:generate", description="Scope the paid tools need (generate, edit, 4o)."
    )
    oauth_read_scope: str = Field(
        "images:read", description="Scope fetch_job and the image and job resources need."
    )
    oauth_jwks_cache_seconds: float = Field(
        3600.0, gt=0, description="How long the issuer's signing keys are used before refetching."
    )
    oauth_jwks_min_refresh_seconds: float = Field(
        30.0, ge=0, description="Least gap between key fetches (a token with an unknown key id "
        "triggers one)."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text, or one JSON object per line with request and "
        "job ids."
    )

    # Replicas on PostgreSQL: the records in a shared database instead of the SQLite file.
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:5432/db for several replicas on "
        "one database; unset: the SQLite file database_path."
    )

    # Shared image bytes: an S3-compatible bucket instead of each server's output folder.
    storage_url: str | None = Field(
        None, description="s3://bucket/prefix: the image bytes in an S3-compatible bucket "
        "shared by every replica (output_dir then holds each server's copies); unset: the "
        "output folder alone."
    )
    storage_endpoint: str | None = Field(
        None, description="S3 endpoint URL (MinIO, R2, Ceph...); unset: AWS_ENDPOINT_URL or "
        "AWS S3."
    )
    storage_region: str | None = Field(None, description="S3 region; unset: AWS_REGION.")
    storage_access_key_id: str | None = Field(
        None, description="S3 access key id; unset: AWS_ACCESS_KEY_ID."
    )
    storage_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret access key; unset: AWS_SECRET_ACCESS_KEY."
    )

    @field_validator("storage_url", mode="before")
    @classmethod
    def _s3_url(cls, value: Any) -> Any:
        return _url_or_none(value, ("s3://",), "must be an s3://bucket/prefix URL (leave it "
                            "unset for the output folder alone)")

    @field_validator("storage_endpoint", mode="before")
    @classmethod
    def _endpoint_url(cls, value: Any) -> Any:
        return _url_or_none(value, ("http://", "https://"), "must be an http(s):// URL of "
                            "the S3 service, e.g. https://s3.eu-central-1.amazonaws.com or "
                            "http://127.0.0.1:9000")

    @field_validator("database_url", mode="before")
    @classmethod
    def _postgresql_url(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str) or not raw.strip().startswith(("postgresql://",
                                                                   "postgres://")):
            raise ValueError("must be a postgresql://user:password@host:port/database URL")
        return SecretStr(raw.strip())

    def database_url_value(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None

    @field_validator("api_key", "http_bearer_token", mode="before")
    @classmethod
    def _usable_as_header(cls, value: Any) -> Any:
        """Trimmed, then refused unless it can be sent as a header (see keycheck)."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        raw = raw.strip()
        if not raw:
            return None
        problem = header_problem(raw)
        if problem:
            raise ValueError(f"the value {problem}")
        return SecretStr(raw)

    @property
    def store_path(self) -> Path:
        return self.database_path or self.output_dir / ".ttapi-mcp" / "store.sqlite3"

    def storage_problem(self) -> str | None:
        """Why ``storage_url`` cannot be used here (its client is not installed), or None;
        checked at start without importing the client."""
        from importlib.util import find_spec

        if not self.storage_url:
            return None
        try:
            found = find_spec("obstore")
        except (ImportError, ValueError):  # a broken or hidden installation
            found = None
        return f"storage_url: {S3_CLIENT_MISSING}, or unset storage_url" if found is None else None

    def secret_values(self) -> list[str]:
        """Every secret this process knows, for the log scrubber: the keys, the bearer
        token, the S3 secret (configured or from the environment), the database password."""
        found = [self.api_key_value() or ""]
        for secret in (self.http_bearer_token, self.storage_secret_access_key):
            if secret is not None:
                found.append(secret.get_secret_value())
        found += [os.environ.get(k, "") for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
        url = self.database_url_value()
        if url:
            from urllib.parse import unquote, urlsplit

            try:
                password = unquote(urlsplit(url).password or "")
            except ValueError:  # a malformed URL: the store says so when it opens
                password = ""
            if len(password) >= 8:  # a shorter one would blank out ordinary words
                found.append(password)
        return [s for s in found if s]

    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    def prepare_dirs(self) -> None:
        """Create the output and database folders; a failure is a configuration error."""
        folders = (("output_dir", self.output_dir), ("database_path", self.store_path.parent))
        for key, folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"Configuration error: {key}: cannot create folder {folder} ({exc.strerror}). "
                    "Choose a folder you can write to."
                ) from None


def _url_or_none(value: Any, schemes: tuple[str, ...], problem: str) -> str | None:
    """A trimmed URL with one of ``schemes`` and something after it; blank is unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else ""
    scheme = next((s for s in schemes if text.startswith(s)), None)
    if scheme is None or text[len(scheme):][:1] in ("", "/"):  # a host or bucket first
        raise ValueError(problem)
    return text


SECRET_KEYS = frozenset({"api_key", "http_bearer_token", "database_url",
                         "storage_secret_access_key"})
PATH_KEYS = frozenset({"output_dir", "database_path"})


def mask_secret(value: str | None) -> str:
    """Show that a secret is set without showing it: 'sk-…' → '****cdef' style."""
    if not value:
        return "(not set)"
    return f"****{value[-4:]}" if len(value) >= 12 else "****"


def trimmed(value: Any) -> Any:
    """Surrounding white space and line breaks removed, in strings and lists of strings:
    values are pasted from web pages and `.env` files, and arrive with a trailing newline."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [trimmed(item) for item in value]
    return value


def _env_value(key: str, raw: str) -> Any:
    stripped = raw.strip()
    if key == "prices":
        return json.loads(stripped)
    if key == "input_roots":
        if stripped.startswith("["):
            return trimmed(json.loads(stripped))
        return [part.strip() for part in stripped.split(os.pathsep) if part.strip()]
    return stripped


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Configuration error: cannot read config file {path} ({exc.strerror})."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Configuration error: config file {path} is not valid JSON "
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration error: config file {path} must hold a JSON object.")
    # Keys starting with "_" are comments (JSON has none of its own); null means "default".
    return {k: trimmed(v) for k, v in data.items() if not k.startswith("_") and v is not None}


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())
    return value


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    origins: dict[str, str] | None = None,
) -> Settings:
    """Build Settings: defaults < JSON file < TTAPI_* environment < overrides (CLI flags).

    ``origins``, when given, is filled with where each non-default value came from, so
    ``doctor`` can tell a user which file, variable or flag to change.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origin: dict[str, str] = {} if origins is None else origins
    fields = Settings.model_fields

    file_name = config_path or env.get(CONFIG_ENV_VAR)
    if file_name:
        file_path = Path(file_name).expanduser().resolve()
        for key, value in _read_config_file(file_path).items():
            if key in PATH_KEYS:
                value = _absolute(value, file_path.parent)
            elif key == "input_roots" and isinstance(value, list):
                value = [_absolute(v, file_path.parent) for v in value]
            values[key] = value
            origin[key] = f"config file {file_path}"

    for key in fields:
        name = ENV_PREFIX + key.upper()
        # Set to nothing (a client's empty optional field, `VAR=` in a .env file) = unset.
        if name in env and env[name].strip():
            try:
                value = _env_value(key, env[name])
            except json.JSONDecodeError:
                what = "object" if key == "prices" else (
                    f"list nor a {os.pathsep!r}-separated list of folders")
                raise ConfigError(
                    f"Configuration error: {key}: environment variable {name} is not a JSON "
                    f"{what}."
                ) from None
            values[key] = _absolute(value, Path.cwd()) if key in PATH_KEYS else value
            origin[key] = f"environment variable {name}"

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        value = trimmed(value)
        values[key] = _absolute(value, Path.cwd()) if key in PATH_KEYS else value
        origin[key] = f"command-line flag --{key.replace('_', '-')}"

    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    settings.input_roots = [_absolute_path(p) for p in settings.input_roots]
    return settings


def _absolute_path(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


def _describe(exc: ValidationError, origin: Mapping[str, str]) -> str:
    lines = ["Configuration error:"]
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        where = origin.get(key, "defaults")
        if error["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            lines.append(f"- unknown key {key!r} in {where}. Known keys: {known}.")
            continue
        # prices' own messages name the bad entry and its value; the whole table is noise.
        quiet = key in SECRET_KEYS or key == "prices"
        shown = "" if quiet else f" (got {error.get('input')!r})"
        message = str(error["msg"])
        if key in SECRET_KEYS and message.startswith("Value error, "):
            # A key that cannot be sent: say where it came from first; never show it.
            lines.append(f"- {key} (from {where}): {message.removeprefix('Value error, ')}.")
            continue
        lines.append(f"- {key}: {message}{shown}, from {where}.")
    return "\n".join(lines)


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """Settings for display (doctor, example file): secrets masked, paths as strings."""
    data = settings.model_dump(mode="json")
    for key in SECRET_KEYS:
        secret = getattr(settings, key)
        data[key] = mask_secret(secret.get_secret_value() if secret else None)
    data["database_path"] = str(settings.store_path)
    return data
