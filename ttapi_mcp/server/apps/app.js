// The viewer and gallery of ttapi-mcp, on top of AppBridge (bridge.js). Images arrive
// as base64 in tool results, never as URLs: the page loads nothing from anywhere.
(() => {
  const POLL_MS = 1500, MAX_POLLS = 400;
  const PAGE = 60;
  const KEEP_THUMBS = 360;
  const EDIT_MODELS = ["gpt-image-1", "gpt-image-1.5", "gpt-image-2"];
  const JOB_ONLY_MODELS = ["gpt-4o-image", "gpt-image-2-plus"];
  const $ = (id) => document.getElementById(id);
  const state = { tool: null, args: {}, result: null, gallery: null, polls: 0 };

  AppBridge.on("ui/notifications/tool-input", (p) => { state.args = p.arguments || {}; });
  AppBridge.on("ui/notifications/tool-result", (p) => show(p));
  AppBridge.on("ui/notifications/tool-cancelled",
    (p) => setStatus(`Cancelled: ${p.reason || "no reason given"}`));
  AppBridge.on("ui/notifications/host-context-changed", (p) => applyContext(p));
  const callTool = AppBridge.callTool;
  const tileMemory = TileMemory.create({
    keep: KEEP_THUMBS,
    fetchThumbs: async (ids) => {
      const result = await callTool("app_images", { image_ids: ids, size: "thumb" });
      return imageBlocks(result).map(dataUri);
    },
  });

  function applyContext(ctx) {
    if (ctx.theme) document.documentElement.style.colorScheme = ctx.theme;
    const vars = ctx.styles && ctx.styles.variables;
    if (vars) for (const [k, v] of Object.entries(vars)) if (v) {
      document.documentElement.style.setProperty(k, v);
    }
  }

  // -- helpers ---------------------------------------------------------------------
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const c of children) node.append(c);
    return node;
  };
  const setStatus = (text, error) => {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  };
  const dataUri = (block) => `data:${block.mimeType};base64,${block.data}`;
  const imageBlocks = (result) => (result.content || []).filter((c) => c.type === "image");
  const when = (ts) => new Date(ts * 1000).toLocaleString();
  function inferTool(args) {
    if (state.tool) return state.tool;
    if (args.job_id) return "fetch_job";
    if (args.images) return "edit_image";
    // Arguments only gpt4o_image takes (its job models and the async GPT route's options).
    if (args.refer_images || args.hook_url || args.aspect_ratio || JOB_ONLY_MODELS.includes(args.model)) {
      return "gpt4o_image";
    }
    return args.prompt ? "generate_image" : null;
  }
  function showSection(name) {
    $("viewer").hidden = name !== "viewer";
    $("gallery").hidden = name !== "gallery";
    $("to-gallery").hidden = name === "gallery";
    $("to-viewer").hidden = name !== "gallery" || !state.result;
  }

  // -- viewer ----------------------------------------------------------------------
  function show(result) {
    const doc = result && result.structuredContent;
    if (result && result.isError) {
      const text = (result.content || []).filter((c) => c.type === "text").map((c) => c.text);
      setStatus(text.join(" ") || "The call failed.", true);
      return;
    }
    if (!doc) { setStatus("This result has no structured content to show.", true); return; }
    if (doc.gallery) { openGallery(true); return; }
    if (Array.isArray(doc.items)) { showSection("gallery"); galleryPage(doc, true); return; }
    render(doc, state.args);
  }

  function metaRow(dl, label, value) {
    if (value === undefined || value === null || value === "") return;
    dl.append(el("dt", { textContent: label }), el("dd", { textContent: String(value) }));
  }

  function render(doc, args) {
    state.result = doc;
    showSection("viewer");
    const pending = doc.status === "pending";
    $("progress").hidden = !pending;
    const count = doc.images.length;
    setStatus(pending ? `Job ${doc.job_id} is running (${doc.job_status || "queued"})…`
      : doc.status === "failed" ? `Failed: ${doc.message || "no reason given"}`
      : `${count} image${count === 1 ? "" : "s"}, ${doc.status}`, doc.status === "failed");
    const dl = el("dl");
    const p = doc.parameters || {};
    metaRow(dl, "Prompt", args.prompt);
    metaRow(dl, "Model", doc.model);
    metaRow(dl, "Size", p.size);
    metaRow(dl, "Quality", p.quality);
    metaRow(dl, "Status", doc.status + (doc.job_status ? ` (${doc.job_status})` : ""));
    metaRow(dl, "Job id", doc.job_id);
    if (doc.usage) metaRow(dl, "Usage", Object.entries(doc.usage)
      .filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k} ${v}`).join(", "));
    metaRow(dl, "Quota", doc.quota);
    for (const miss of doc.missing || []) metaRow(dl, `Image ${miss.index}`, miss.error);
    $("meta").replaceChildren(dl);
    $("meta").firstChild.id = "meta-list";
    const tool = inferTool(args);
    $("actions").hidden = pending || !["generate_image", "edit_image", "gpt4o_image"].includes(tool);
    $("edit").hidden = true;
    const figures = doc.images.map((image) => figure(image, doc));
    $("images").replaceChildren(...figures);
    if (count) loadImages(doc.images, figures);
    showPartials(pending ? doc.job_id : null);
    if (pending) poll(doc.job_id);
  }

  // -- partial images of a pending streamed job --------------------------------------
  // The newest partial of each image, through app_partials; a preview the page already
  // shows is not sent again. They give way to the final images when the job completes.
  function showPartials(jobId) {
    state.partials = jobId ? { jobId, ids: {}, figures: {} } : null;
    $("partial-grid").replaceChildren();
    $("partials").hidden = true;
    if (jobId) loadPartials(jobId);
  }

  async function loadPartials(jobId) {
    const shown = state.partials;
    if (!shown || shown.jobId !== jobId) return;
    let result;
    try {
      result = await callTool("app_partials", { job_id: jobId, have: Object.values(shown.ids) });
    } catch (_) { return; }  // previews only: the job's own status says what matters
    if (state.partials !== shown) return;  // the job ended meanwhile
    const blocks = imageBlocks(result);
    let next = 0;
    for (const p of (result.structuredContent || {}).partials || []) {
      if (!p.sent) continue;
      const block = blocks[next++];
      if (!block) break;
      const fig = shown.figures[p.image_index] || (shown.figures[p.image_index] = partialFigure(p));
      fig.querySelector("img").src = dataUri(block);
      fig.querySelector(".hint").textContent = `partial ${p.partial_index + 1}, a preview`;
      fig.dataset.partialId = p.partial_id;
      shown.ids[p.image_index] = p.partial_id;
    }
    const order = Object.keys(shown.figures).map(Number).sort((a, b) => a - b);
    $("partial-grid").replaceChildren(...order.map((i) => shown.figures[i]));
    $("partials").hidden = !order.length;
  }

  function partialFigure(p) {
    const img = el("img", { alt: `image ${p.image_index}, partial` });
    const caption = el("figcaption", {}, el("div", { className: "row" },
      el("span", { className: "label", textContent: `Image ${p.image_index}` }),
      el("span", { className: "hint" })));
    return el("figure", { className: "partial" }, img, caption);
  }

  function figure(image, doc) {
    const img = el("img", { alt: `image ${image.index}` });
    img.addEventListener("click", () => openFull(image.id));
    const path = el("input", { value: image.path, readOnly: true, title: "saved file" });
    path.className = "path";
    const copy = el("button", { textContent: "Copy path", type: "button" });
    copy.addEventListener("click", () => copyText(path, copy));
    const edit = el("button", { textContent: "Edit", type: "button" });
    edit.className = "edit";
    edit.addEventListener("click", () => openEdit(image, doc));
    const size = image.width && image.height ? `${image.width}×${image.height}` : "";
    const caption = el("figcaption", {},
      el("div", { className: "row" }, el("span", { className: "label", textContent: image.index === undefined ? "Image" : `Image ${image.index}` }),
        el("span", { className: "hint", textContent: `${size} ${image.mime}` })),
      el("div", { className: "row" }, path, copy, edit));
    if (image.revised_prompt) {
      caption.append(el("div", { className: "hint revised", textContent: `Revised: ${image.revised_prompt}` }));
    }
    const node = el("figure", {}, img, caption);
    node.dataset.imageId = image.id;
    return node;
  }

  // One call per image: each appears as soon as it arrives, and no message carries more
  // than one large preview (hosts cap message sizes).
  async function loadImages(images, figures) {
    let failed = 0;
    await Promise.all(images.map(async (image, i) => {
      try {
        const result = await callTool("app_images", { image_ids: [image.id], size: "large" });
        const [block] = imageBlocks(result);
        if (block) figures[i].querySelector("img").src = dataUri(block);
        const [info] = (result.structuredContent && result.structuredContent.images) || [];
        if (i === 0 && info && info.prompt && !state.args.prompt) {
          metaRow($("meta-list"), "Prompt", info.prompt);
        }
      } catch (err) {
        failed += 1;
        figures[i].querySelector("img").alt = `image ${image.index}: ${err.message}`;
      }
    }));
    if (failed) setStatus(`${failed} image${failed === 1 ? "" : "s"} could not be loaded.`, true);
  }

  async function openFull(id) {
    try {
      const result = await callTool("app_images", { image_ids: [id], size: "full" });
      const [block] = imageBlocks(result);
      if (!block) return;
      $("full").src = dataUri(block);
      $("lightbox").hidden = false;
    } catch (err) { setStatus(`Could not open the image: ${err.message}`, true); }
  }

  function copyText(input, button) {
    input.select();
    const done = () => { button.textContent = "Copied"; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(done, () => {
        try { document.execCommand("copy"); done(); } catch (_) { /* selected: copy by hand */ }
      });
    } else {
      try { document.execCommand("copy"); done(); } catch (_) { /* selected */ }
    }
  }

  function openEdit(image, doc) {
    state.editImage = image.uri;
    state.editModel = EDIT_MODELS.includes(doc.model) ? doc.model : null;
    $("edit-images").value = image.uri;
    $("edit-prompt").value = "";
    $("edit").hidden = false;
    $("edit-prompt").focus();
  }

  async function runEdit() {
    if (!$("edit-prompt").value.trim()) { setStatus("Write what to change first.", true); return; }
    const args = { prompt: $("edit-prompt").value, images: [state.editImage], preview: "none" };
    if (state.editModel) args.model = state.editModel;
    await runTool("edit_image", args, "Editing…");
  }

  async function drawAgain() {
    const tool = inferTool(state.args);
    const args = { ...state.args };
    if (tool !== "gpt4o_image") { args.dedupe = false; args.preview = "none"; }
    await runTool(tool, args, "Drawing again (a new, separately billed request)…");
  }

  async function runTool(tool, args, message) {
    setStatus(message);
    $("actions").hidden = true;
    try {
      const result = await callTool(tool, args);
      state.tool = tool;
      state.args = args;
      render(result.structuredContent, args);
    } catch (err) {
      setStatus(err.message, true);
      $("actions").hidden = false;
    }
  }

  async function poll(jobId) {
    const started = Date.now();
    state.polls = 0;
    const token = (state.pollToken = {});
    while (state.polls++ < MAX_POLLS && state.pollToken === token) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const seconds = (Date.now() - started) / 1000;
      $("progress-bar").style.width = `${Math.min(95, 5 + seconds * 2)}%`;
      try {
        const result = await callTool("fetch_job", { job_id: jobId });
        const doc = result.structuredContent;
        if (doc.status !== "pending") { render(doc, state.args); return; }
        await loadPartials(jobId);
        setStatus(`Job ${jobId} is running (${doc.job_status || "queued"}, ${Math.round(seconds)} s)…`);
      } catch (err) { setStatus(`Polling failed: ${err.message}`, true); return; }
    }
  }

  // -- gallery ---------------------------------------------------------------------
  function filters() {
    const f = { limit: PAGE };
    const put = (k, v) => { if (v) f[k] = v; };
    put("query", $("q").value.trim());
    put("model", $("f-model").value);
    put("tool", $("f-tool").value);
    put("since", $("f-since").value);
    put("until", $("f-until").value);
    put("job_id", state.jobFilter);
    return f;
  }

  async function openGallery(fresh) {
    showSection("gallery");
    if (!fresh && state.gallery) return;
    state.gallery = { cursor: null, done: false, busy: false, count: 0, filters: filters() };
    $("grid").replaceChildren();
    await morePages();
  }

  async function morePages() {
    const g = state.gallery;
    if (!g || g.busy || g.done) return;
    g.busy = true;
    $("g-status").textContent = "Loading…";
    try {
      const args = { ...g.filters };
      if (g.cursor) args.cursor = g.cursor;
      const result = await callTool("app_gallery", args);
      galleryPage(result.structuredContent, false);
    } catch (err) {
      $("g-status").textContent = `Could not load the gallery: ${err.message}`;
    } finally { g.busy = false; }
  }

  function galleryPage(page, first) {
    if (first || !state.gallery) {
      state.gallery = { cursor: null, done: false, busy: false, count: 0, filters: filters() };
      $("grid").replaceChildren();
      tileMemory.reset();
    }
    const g = state.gallery;
    const select = $("f-model");
    if (select.options.length === 1) {
      for (const m of page.models || []) select.append(el("option", { value: m, textContent: m }));
    }
    const tiles = page.items.map((item) => {
      const tile = el("div", { className: "tile", title: item.prompt || "" },
        el("img", { src: item.thumb, alt: item.prompt || item.id, loading: "lazy", decoding: "async" }),
        el("div", { textContent: item.prompt || "(no prompt)" }));
      tile.dataset.imageId = item.id;
      delete item.thumb;  // the tile holds it; the click handler need not
      tile.addEventListener("click", () => openItem(item));
      return tile;
    });
    $("grid").append(...tiles);
    tileMemory.track(tiles);
    tileMemory.trim([...$("grid").children]);
    g.count += tiles.length;
    g.cursor = page.next_cursor;
    g.done = !page.next_cursor;
    $("more").hidden = g.done;
    if (page.total !== undefined) g.total = page.total;
    const of = g.total !== undefined ? ` of ${g.total}` : "";
    $("g-status").textContent = `${g.count}${of} shown${g.done ? "" : ", more below"}`;
  }

  function openItem(item) {
    state.tool = null;
    const doc = { status: "completed", model: item.model || "", parameters: item.parameters || {},
      images: [item], missing: [], job_id: item.job_id };
    render(doc, { prompt: item.prompt });
    $("actions").hidden = true;
    if (item.job_id) {
      const jobButton = el("button", { textContent: "All images of this job", type: "button", id: "job-images" });
      jobButton.addEventListener("click", () => {
        for (const id of ["q", "f-model", "f-tool", "f-since", "f-until"]) $(id).value = "";
        state.jobFilter = item.job_id;
        showJobFilter();
        openGallery(true);
      });
      $("meta").append(jobButton);
    }
  }

  function showJobFilter() {
    const tag = $("g-job");
    tag.hidden = !state.jobFilter;
    tag.replaceChildren();
    if (!state.jobFilter) return;
    const clear = el("button", { textContent: "×", type: "button", title: "show every job" });
    clear.addEventListener("click", () => { state.jobFilter = null; showJobFilter(); openGallery(true); });
    tag.append(`Job ${state.jobFilter} `, clear);
  }

  // -- wiring ----------------------------------------------------------------------
  $("again").addEventListener("click", drawAgain);
  // Buttons, not form submission: hosts sandbox the frame without allow-forms.
  $("edit-run").addEventListener("click", runEdit);
  $("edit-cancel").addEventListener("click", () => { $("edit").hidden = true; });
  $("to-gallery").addEventListener("click", () => openGallery(false));
  $("to-viewer").addEventListener("click", () => showSection("viewer"));
  $("filter").addEventListener("click", () => openGallery(true));
  $("filters").addEventListener("keydown", (e) => { if (e.key === "Enter") openGallery(true); });
  for (const id of ["f-model", "f-tool", "f-since", "f-until"]) {
    $(id).addEventListener("change", () => openGallery(true));
  }
  $("more").addEventListener("click", morePages);
  $("close").addEventListener("click", () => { $("lightbox").hidden = true; $("full").src = ""; });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !$("gallery").hidden) morePages();
  }).observe($("sentinel"));
  if (!AppBridge.embedded) {
    setStatus("Open this page through an MCP host or `ttapi-mcp gallery`.");
    return;
  }
  AppBridge.connect({ name: "ttapi-mcp viewer", version: "1" }).then((ctx) => {
    applyContext(ctx);
    state.tool = (ctx.toolInfo && ctx.toolInfo.tool && ctx.toolInfo.tool.name) || null;
  }, (err) => setStatus(`The host did not answer: ${err.message}`, true));
})();
