"""Cost estimates: the price table, its configuration, and where the estimate shows.

Estimates come from catalog/prices.py (OpenAI's list prices at 1 USD = 100 quota, since
TTAPI publishes none) or the user's ``prices`` setting; each call's estimate is in its
progress notes and its result. A bad budget or price is a configuration error naming
its key, and the CLI exits 2 on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make_server_settings, mcp_client

from ttapi_mcp.catalog.prices import DEFAULT_PRICES, SOURCES, merge_prices, price_per_image
from ttapi_mcp.config import ConfigError, load_settings
from ttapi_mcp.emulator import Emulator
from ttapi_mcp.service.money import quote_4o, quote_images

REPO = Path(__file__).resolve().parents[1]


def test_every_default_price_has_a_source_and_is_positive() -> None:
    from ttapi_mcp.catalog import MODELS

    assert set(MODELS) | {"gpt-4o-image"} <= set(DEFAULT_PRICES), "a model has no price"
    assert set(SOURCES) == set(DEFAULT_PRICES)
    for model, entry in DEFAULT_PRICES.items():
        for key, value in entry.items():
            values = value.values() if isinstance(value, dict) else [value]
            assert all(v > 0 for v in values), (model, key)
    # OpenAI's list price for gpt-image-1 high 1024x1024 is $0.167 = 16.7 quota.
    assert DEFAULT_PRICES["gpt-image-1"]["high"]["1024x1024"] == 16.7


def test_estimates_multiply_by_n_and_count_auto_as_the_dearest() -> None:
    settings = load_settings(env={})
    quote = quote_images(settings, {"model": "gpt-image-1", "n": 3, "quality": "low",
                                    "size": "1024x1024"})
    assert quote.cost.estimate_quota == pytest.approx(3 * 1.1)
    assert quote.cost.estimate_usd == pytest.approx(0.033)
    assert quote.cost.basis.startswith("estimate:") and "3 x" in quote.cost.basis
    auto = quote_images(settings, {"model": "gpt-image-1"})
    assert auto.cost.estimate_quota == 25.0  # high, 1536x1024: the most it can cost
    assert "quality auto counted as high" in auto.cost.basis
    assert "size auto counted as" in auto.cost.basis
    legacy = quote_images(settings, {"model": "dall-e-3", "quality": "hd", "size": "1792x1024"},
                          legacy=True)
    assert legacy.cost.estimate_quota == pytest.approx(12.0 * 0.25)
    edit = quote_images(settings, {"model": "gpt-image-1", "quality": "low",
                                   "size": "1024x1024", "input_fidelity": "high"},
                        input_images=2)
    assert edit.cost.estimate_quota == pytest.approx(1.1 + 2 * (1.0 + 4.0))
    streamed = quote_images(settings, {"model": "gpt-image-1", "quality": "low", "n": 2,
                                       "size": "1024x1024", "partial_images": 3})
    assert streamed.cost.estimate_quota == pytest.approx(2 * 1.1 + 6 * 0.4)
    free = price_per_image(merge_prices(None), "gpt-image-2", "low", "2048x2048")
    assert free[0] == pytest.approx(1.1 * 4) and "pixel area" in free[1]
    assert quote_4o(settings).cost.estimate_quota == 2.0


def test_prices_setting_overrides_part_of_the_table() -> None:
    settings = load_settings(env={}, overrides={
        "prices": {"gpt-image-1": {"high": {"1024x1024": 12}}, "gpt-4o-image": {"job": 3}}})
    quote = quote_images(settings, {"model": "gpt-image-1", "quality": "high",
                                    "size": "1024x1024", "n": 2})
    assert quote.cost.estimate_quota == 24.0
    assert quote_4o(settings).cost.estimate_quota == 3.0
    # The rest of the table keeps its defaults.
    assert quote_images(settings, {"model": "dall-e-2", "size": "256x256"}).cost \
        .estimate_quota == 1.6
    from_env = load_settings(env={"TTAPI_PRICES": '{"dall-e-2": {"standard": {"256x256": 5}}}'})
    assert quote_images(from_env, {"model": "dall-e-2", "size": "256x256"}).cost \
        .estimate_quota == 5.0


@pytest.mark.parametrize(("key", "value", "words"), [
    ("budget_per_day", -1, "greater than or equal to 0"),
    ("budget_per_day", "lots", "valid number"),
    ("budget_per_month", 1e12, "less than or equal to"),
    ("budget_per_call", True, "not true/false"),
    ("budget_per_call", "nan", "finite number"),
    ("budget_per_user_day", -2, "greater than or equal to 0"),
    ("budget_per_user_day", False, "not true/false"),
    ("budget_per_user_month", "inf", "finite number"),
    ("budget_per_user_month", 1e12, "less than or equal to"),
    ("confirm_above", -0.5, "greater than or equal to 0"),
    ("budget_timezone", "Mars/Olympus", "unknown time zone"),
    ("prices", {"gpt-image-1": {"high": {"1024x1024": -3}}}, "prices.gpt-image-1.high.1024x1024"),
    ("prices", {"gpt-image-1": {"high": {"1024x1024": "cheap"}}}, "must be a number"),
    ("prices", {"gpt-image-1": {"high": {"1024x1024": 1e9}}}, "between 0 and 10000"),
    ("prices", {"gpt-image-1": {"ultra": {"1024x1024": 3}}}, "unknown key 'ultra'"),
    ("prices", {"gpt-image-1": {"high": {"999x999": 3}}}, "unknown size '999x999'"),
    ("prices", {"midjourney": {}}, "unknown model 'midjourney'"),
    ("prices", "free", "must be an object"),
])
def test_bad_budgets_and_prices_are_configuration_errors(key: str, value: Any,
                                                         words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={}, overrides={key: value})
    text = str(caught.value)
    assert f"- {key}:" in text and words in text, text


def test_cli_exits_2_naming_the_bad_budget_key(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"budget_per_day": "ten", "output_dir": str(tmp_path)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env["PYTHONPATH"] = str(REPO)
    for command in ("serve", "usage"):
        result = subprocess.run([sys.executable, "-m", "ttapi_mcp", command, "--config",
                                 str(config)], capture_output=True, text=True, env=env,
                                timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert "budget_per_day" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.anyio
async def test_models_resource_shows_the_configured_price_table(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path,
                                    prices={"dall-e-2": {"standard": {"512x512": 7}}})
    async with mcp_client(settings) as client:
        read = await client.read_resource("ttapi://models")
    doc = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    prices = doc["prices"]
    assert "estimate" in prices["unit"]
    assert prices["models"]["dall-e-2"]["prices"]["standard"]["512x512"] == 7
    assert prices["models"]["gpt-image-1"]["prices"]["high"]["1024x1024"] == 16.7
    assert "OpenAI" in prices["models"]["gpt-image-1"]["source"]
    assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_estimate_is_in_progress_notes_and_result(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    notes: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    args = {"prompt": "a boat", "model": "dall-e-2", "size": "512x512", "n": 2}
    async with mcp_client(settings, client_mode) as client:
        result = await client.call_tool("generate_image", args, progress_callback=on_progress)
        job = await client.call_tool("gpt4o_image", {"prompt": "draw a boat"},
                                     progress_callback=on_progress)
    assert not result.is_error, result.content
    cost = result.structured_content["cost"]
    assert cost["estimate_quota"] == 3.6 and cost["estimate_usd"] == 0.036
    assert cost["basis"].startswith("estimate: 2 x 1.8 quota per image (dall-e-2")
    assert any("estimated cost about 3.6 quota ($0.04)" in n for n in notes), notes
    assert "Estimated cost: about 3.6 quota" in result.content[0].text  # type: ignore[union-attr]
    assert job.structured_content["cost"]["estimate_quota"] == 2.0
    assert job.structured_content["quota"] == 2.0  # what TTAPI reported, next to it
    assert any("estimated cost about 2 quota" in n for n in notes), notes
