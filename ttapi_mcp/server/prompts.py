"""Prompts for the common jobs: each turns a few answers into a ready tool call.

A prompt returns one user message that names the tool and gives its arguments as
JSON, plus the reasoning behind the choice, so an agent (or a person) can run it
as is or adjust it.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer


def _request(intro: str, tool: str, arguments: dict[str, Any], why: str) -> str:
    call = json.dumps({"tool": tool, "arguments": arguments}, indent=2, ensure_ascii=False)
    return (
        f"{intro}\n\nCall the `{tool}` tool with these arguments:\n\n```json\n{call}\n```\n\n"
        f"{why} Show the user the saved file path from the result when it is done."
    )


def _quoted(text: str) -> str:
    return text.replace('"', "'")


def register_prompts(server: MCPServer[Any]) -> None:
    """Declare the five use-case prompts."""

    @server.prompt(name="poster", title="Poster",
                   description="A poster with a headline rendered in the image.")
    def poster(subject: str, headline: str, style: str = "bold modern graphic design",
               orientation: str = "portrait") -> str:
        size = "1536x1024" if orientation.lower().startswith("land") else "1024x1536"
        prompt = (
            f"A {style} poster about {subject}. The headline reads \"{_quoted(headline)}\" in "
            "large, clean, perfectly legible lettering. Strong composition, clear visual "
            "hierarchy, print-ready."
        )
        return _request(
            f"Make a {orientation} poster about {subject}.", "generate_image",
            {"prompt": prompt, "model": "gpt-image-1", "size": size, "quality": "high"},
            "gpt-image-1 renders text reliably; high quality keeps the lettering sharp.",
        )

    @server.prompt(name="article_illustration", title="Article illustration",
                   description="A wide header illustration for an article or blog post.")
    def article_illustration(title: str, summary: str = "",
                             style: str = "editorial flat illustration") -> str:
        about = f"{title}. {summary}".strip()
        prompt = (
            f"A {style} for an article titled \"{_quoted(title)}\". It conveys: {about} "
            "Wide composition with space for a headline, no text in the image."
        )
        return _request(
            f"Illustrate the article \"{title}\".", "generate_image",
            {"prompt": prompt, "model": "gpt-image-1", "size": "1536x1024",
             "quality": "medium", "output_format": "webp", "output_compression": 85},
            "A landscape WebP keeps the header light for the web.",
        )

    @server.prompt(name="try_on_photo", title="Try-on photo",
                   description="A photo of a person wearing a garment, from a garment picture.")
    def try_on_photo(garment_image: str, person: str = "a model standing in a bright studio",
                     person_image: str = "") -> str:
        images = [garment_image] + ([person_image] if person_image else [])
        who = "the person in the second image" if person_image else person
        prompt = (
            f"A realistic full-body fashion photo of {who} wearing the garment from the first "
            "image. Keep the garment's exact colours, pattern, fabric and logos. Natural "
            "lighting, true-to-life fit."
        )
        return _request(
            "Create a try-on photo from the garment picture.", "edit_image",
            {"prompt": prompt, "images": images, "model": "gpt-image-1",
             "input_fidelity": "high", "size": "1024x1536", "quality": "high"},
            "edit_image takes the garment picture (a path, ttapi://images/{id}, data URI or "
            "URL); input_fidelity 'high' preserves the garment's details.",
        )

    @server.prompt(name="product_cover", title="Product cover",
                   description="A clean product hero image, optionally on a transparent "
                   "background.")
    def product_cover(product: str, setting: str = "on a seamless light studio backdrop",
                      transparent: str = "no") -> str:
        clear = transparent.strip().lower() in ("yes", "true", "1", "y")
        prompt = (
            f"A premium product photo of {product}"
            + (", isolated, no background" if clear else f", {setting}")
            + ". Soft studio lighting, crisp detail, centered composition."
        )
        arguments: dict[str, Any] = {"prompt": prompt, "model": "gpt-image-1",
                                     "size": "1024x1024", "quality": "high"}
        if clear:
            arguments.update(background="transparent", output_format="png")
        return _request(
            f"Make a cover image for {product}.", "generate_image", arguments,
            "A transparent background needs output_format png (or webp).",
        )

    @server.prompt(name="story_illustration", title="Story illustration",
                   description="An illustration of a scene from a story, in a chosen style.")
    def story_illustration(scene: str, style: str = "warm watercolor children's book",
                           characters: str = "") -> str:
        cast = f" Characters: {characters}." if characters else ""
        prompt = f"A {style} illustration of this scene: {scene}.{cast} No text."
        return _request(
            "Illustrate the story scene.", "generate_image",
            {"prompt": prompt, "model": "dall-e-3", "size": "1792x1024", "quality": "hd",
             "style": "natural"},
            "dall-e-3 follows scene descriptions closely; keep the same style words for every "
            "scene of the story so the pictures match.",
        )
