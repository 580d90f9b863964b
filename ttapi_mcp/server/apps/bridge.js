"use strict";
// The view side of the MCP Apps protocol (io.modelcontextprotocol/ui, 2026-01-26),
// written by hand: JSON-RPC 2.0 over postMessage with the host (the parent frame),
// which proxies tools/call to the server. The page needs five messages; a bundle of
// the official library would add a build step and a pinned file to keep fresh.
const AppBridge = (() => {
  const PROTOCOL = "2026-01-26";
  const CALL_TIMEOUT_MS = 180000;
  const host = window.parent;
  const handlers = {};
  const waiting = new Map();
  let nextId = 1;

  const send = (msg) => host.postMessage(msg, "*");
  const notify = (method, params) => send({ jsonrpc: "2.0", method, params: params || {} });
  const respond = (id, result) => send({ jsonrpc: "2.0", id, result });

  function request(method, params) {
    const id = nextId++;
    send({ jsonrpc: "2.0", id, method, params: params || {} });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (waiting.delete(id)) reject(new Error(`${method}: no answer from the host`));
      }, CALL_TIMEOUT_MS);
      waiting.set(id, { resolve, reject, timer });
    });
  }

  async function callTool(name, args) {
    const result = await request("tools/call", { name, arguments: args });
    if (result && result.isError) {
      const text = (result.content || []).filter((c) => c.type === "text").map((c) => c.text);
      throw new Error(text.join(" ") || `${name} failed`);
    }
    return result;
  }

  window.addEventListener("message", (event) => {
    if (event.source !== host) return;
    const msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (!msg.method && msg.id !== undefined) {
      const entry = waiting.get(msg.id);
      if (!entry) return;
      waiting.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.error) entry.reject(new Error(msg.error.message || "host error"));
      else entry.resolve(msg.result);
      return;
    }
    if (msg.method === "ui/resource-teardown" || msg.method === "ping") {
      respond(msg.id, {});
    } else if (handlers[msg.method]) {
      handlers[msg.method](msg.params || {});
    } else if (msg.id !== undefined) {
      send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "unknown method" } });
    }
  });

  // Report the content size, so hosts with flexible frames fit the page.
  let lastSize = "";
  new ResizeObserver(() => {
    const root = document.documentElement;
    const size = `${root.scrollWidth}x${root.scrollHeight}`;
    if (size === lastSize) return;
    lastSize = size;
    notify("ui/notifications/size-changed", { width: root.scrollWidth, height: root.scrollHeight });
  }).observe(document.documentElement);

  /** Handshake: resolves with the host context once the host knows we are ready. */
  async function connect(appInfo) {
    const init = await request("ui/initialize", {
      protocolVersion: PROTOCOL, appInfo,
      appCapabilities: { availableDisplayModes: ["inline", "fullscreen"] },
    });
    notify("ui/notifications/initialized", {});
    return (init && init.hostContext) || {};
  }

  return {
    embedded: host !== window,
    on: (method, fn) => { handlers[method] = fn; },
    callTool, connect,
  };
})();
