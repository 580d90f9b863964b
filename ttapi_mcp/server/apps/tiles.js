// Gallery memory: at most `keep` thumbnails stay in the page, however far one scrolls.
// Tiles far from the view lose their image (oldest first); when one comes near the view
// again, its thumbnail is fetched back (from the server's cache) in small batches.
const TileMemory = (() => {
  const BATCH = 16;

  function create({ keep, fetchThumbs }) {
    const near = new Set();
    const queue = new Set();
    let timer = null;

    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          near.add(entry.target);
          if (entry.target.dataset.dropped) queue.add(entry.target);
        } else {
          near.delete(entry.target);
        }
      }
      schedule();
    }, { rootMargin: "800px 0px" });

    function schedule() {
      if (queue.size && !timer) timer = setTimeout(refill, 60);
    }

    async function refill() {
      timer = null;
      const tiles = [...queue].slice(0, BATCH);
      tiles.forEach((t) => queue.delete(t));
      try {
        const sources = await fetchThumbs(tiles.map((t) => t.dataset.imageId));
        tiles.forEach((tile, i) => {
          if (!sources[i]) return;
          tile.querySelector("img").src = sources[i];
          delete tile.dataset.dropped;
        });
      } catch (_) {
        // Left dropped: fetched again the next time it comes into view.
      }
      schedule();
    }

    function track(tiles) { tiles.forEach((t) => observer.observe(t)); }

    function trim(tiles) {
      let kept = tiles.filter((t) => !t.dataset.dropped).length;
      for (const tile of tiles) {
        if (kept <= keep) break;
        if (tile.dataset.dropped || near.has(tile)) continue;
        tile.querySelector("img").removeAttribute("src");
        tile.dataset.dropped = "1";
        kept -= 1;
      }
    }

    function reset() { observer.disconnect(); near.clear(); queue.clear(); }

    return { track, trim, reset };
  }

  return { create };
})();
