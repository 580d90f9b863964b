"""Gallery queries over 10,000 stored images: every image exactly once, newest first.

Why: the gallery pages by (created_at, id) keys, never by offset, so a page costs the same
deep in the store as at its top and no image is skipped or repeated, filters included.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_server_settings
from galleryseed import MODELS, NEEDLE, seed_store

from ttapi_mcp.store import ImageStore
from ttapi_mcp.store.gallery import Gallery, GalleryFilter, fts_query

pytestmark = pytest.mark.anyio
COUNT = 10_000


async def _walk(gallery: Gallery, f: GalleryFilter, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(COUNT // limit + 2):
        items, cursor = await gallery.page(f, cursor, limit)
        ids += [i["id"] for i in items]
        if cursor is None:
            return ids
    raise AssertionError("the pages did not end")


async def test_paging_through_ten_thousand_images(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = make_server_settings("http://127.0.0.1:9", tmp_path, database_url=database_url)
    seeded = await seed_store(settings, COUNT)
    async with ImageStore(settings.output_dir, settings.store_path,
                          database_url=database_url) as store:
        gallery = Gallery(store)
        everything = await _walk(gallery, GalleryFilter(), 200)
        assert everything == list(reversed(seeded))
        one_model = await _walk(gallery, GalleryFilter(model=MODELS[1]), 150)
        assert one_model == [i for i in reversed(seeded) if int(i[4:]) % 3 == 1]
        assert await gallery.total(GalleryFilter(model=MODELS[1])) == len(one_model)
        found = await _walk(gallery, GalleryFilter(query="zebra rain"), 50)
        assert found == [seeded[COUNT // 2]]
        studies = await gallery.total(GalleryFilter(query="lighthouse stud"))  # prefixes
        assert studies == COUNT - 1
        assert sorted(await gallery.models()) == sorted(MODELS)
        [needle] = (await gallery.page(GalleryFilter(query="newspaper"), None, 5))[0]
        assert needle["prompt"] == NEEDLE and needle["uri"] == f"ttapi://images/{needle['id']}"


def test_search_words_become_quoted_prefix_terms() -> None:
    assert fts_query('zebra "AND" NEAR(x') == '"zebra"* "AND"* "NEAR"* "x"*'
    assert fts_query("  ::  ") is None
