/**
 * The content script: puts a "Share securely" button in every compose window the page's adapter finds, hands
 * the draft to the service worker, and shows the share panel — an extension page in an iframe, so the
 * webmail's own scripts can neither read nor change the justification. Knows no webmail's DOM itself.
 */
(function () {
  if (globalThis.__safeShareContent) return;
  globalThis.__safeShareContent = true;
  const api = globalThis.browser ?? globalThis.chrome;
  const adapter = Object.values(globalThis.SafeShareAdapters ?? {})[0];
  if (!adapter) return;

  const MARK = "data-safeshare";
  /** session id → {compose, frame} */
  const open = new Map();

  function bytesToBase64(buf) {
    // Copied into an array of our own first: in Firefox the fetched buffer belongs to the page, and a view of
    // it refuses subarray() to the content script ("Permission denied to access property constructor").
    const bytes = new Uint8Array(buf.byteLength);
    bytes.set(new Uint8Array(buf));
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  /** Fetch each attachment back from the webmail (same origin, the user's own session). */
  async function withAttachmentBytes(draft) {
    const attachments = [];
    for (const a of draft.attachments) {
      if (!a.url) throw new Error(`The attachment ${a.name} could not be read from the webmail.`);
      // A content script's fetch is made as the page (its cookies) in Chromium and in Firefox MV3 (checked in
      // Firefox ESR, where `content` is not defined for MV3 content scripts); content.fetch is older Firefox's way.
      const url = new URL(a.url, location.href).href;
      const init = { credentials: "include" };
      const resp = typeof globalThis.content?.fetch === "function" ? await globalThis.content.fetch(url, init) : await fetch(url, init);
      if (!resp.ok) throw new Error(`The attachment ${a.name} could not be read from the webmail (error ${resp.status}).`);
      const type = a.type || (resp.headers.get("content-type") || "").split(";")[0].trim();
      attachments.push({ name: a.name, type, data: bytesToBase64(await resp.arrayBuffer()) });
    }
    return { ...draft, attachments };
  }

  function closePanel(session) {
    const entry = open.get(session);
    if (!entry) return;
    entry.frame.remove();
    open.delete(session);
    entry.button?.focus();
  }

  function showPanel(session, compose, button) {
    for (const s of [...open.keys()]) closePanel(s);
    const frame = document.createElement("iframe");
    frame.src = api.runtime.getURL("panel/panel.html") + "?session=" + encodeURIComponent(session);
    frame.title = "SafeShare: share securely";
    frame.className = "safeshare-panel-frame";
    frame.setAttribute("allow", "");
    document.body.appendChild(frame);
    frame.focus();
    open.set(session, { compose, frame, button });
  }

  async function onShare(compose, button) {
    button.disabled = true;
    try {
      const draft = await withAttachmentBytes(adapter.read(compose));
      const answer = await api.runtime.sendMessage({ type: "open", draft });
      if (!answer?.ok) throw new Error(answer?.error?.message ?? "SafeShare could not open.");
      showPanel(answer.value.session, compose, button);
    } catch (e) {
      button.setAttribute("aria-description", String(e.message ?? e));
      alert(`SafeShare: ${e.message ?? e}`);
    } finally {
      button.disabled = false;
    }
  }

  function addButton(compose) {
    if (compose.hasAttribute(MARK)) return;
    const anchor = adapter.anchor(compose);
    if (!anchor) return;
    compose.setAttribute(MARK, "1");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "safeshare-button";
    button.textContent = "Share securely";
    button.title = "Share this email's content through SafeShare, with the golden rules justification";
    button.addEventListener("click", (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      onShare(compose, button);
    });
    anchor.insertAdjacentElement("afterend", button);
  }

  function scan() {
    for (const compose of adapter.findComposes(document)) addButton(compose);
  }

  api.runtime.onMessage.addListener((msg, sender, sendResponse) => {
    if (sender.id !== api.runtime.id || !msg || typeof msg.session !== "string") return false;
    const entry = open.get(msg.session);
    if (msg.type === "close-panel") {
      closePanel(msg.session);
      sendResponse({ ok: true });
      return false;
    }
    if (msg.type === "replace") {
      if (!entry) {
        sendResponse({ ok: false, error: "The compose window is no longer open." });
        return false;
      }
      try {
        adapter.removeAttachments(entry.compose);
        adapter.replaceBody(entry.compose, String(msg.text));
        sendResponse({ ok: true });
      } catch (e) {
        sendResponse({ ok: false, error: String(e.message ?? e) });
      }
      return false;
    }
    return false;
  });

  scan();
  new MutationObserver(() => scan()).observe(document.documentElement, { childList: true, subtree: true });
})();
