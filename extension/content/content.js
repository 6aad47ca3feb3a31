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

  /**
   * Fetch each attachment back from the webmail (same origin, the user's own session). One that cannot be read
   * (Outlook on the web's cards carry no download link: it fetches attachments through its own service) is
   * listed in `missing` with what its card shows; the panel then asks the practitioner for that file, or to
   * share without it knowingly.
   */
  async function withAttachmentBytes(draft) {
    const attachments = [];
    const missing = [];
    for (const a of draft.attachments) {
      const card = { name: a.name, type: a.type || "", sizeText: a.sizeText || "" };
      if (!a.url) {
        missing.push(card);
        continue;
      }
      // A content script's fetch is made as the page (its cookies) in Chromium and in Firefox MV3 (checked in
      // Firefox ESR, where `content` is not defined for MV3 content scripts); content.fetch is older Firefox's way.
      const url = new URL(a.url, location.href).href;
      const init = { credentials: "include" };
      let resp;
      try {
        resp = typeof globalThis.content?.fetch === "function" ? await globalThis.content.fetch(url, init) : await fetch(url, init);
      } catch {
        resp = null;
      }
      if (!resp?.ok) {
        missing.push(card);
        continue;
      }
      const type = a.type || (resp.headers.get("content-type") || "").split(";")[0].trim();
      attachments.push({ name: a.name, type, data: bytesToBase64(await resp.arrayBuffer()) });
    }
    return { ...draft, attachments, missing };
  }

  /**
   * A message beside the Share securely button, in the page (never a browser alert dialog, which a managed browser may
   * suppress): plain words, announced, with a button to dismiss it. It holds only SafeShare's own words.
   */
  function say(button, message) {
    let box = button.nextElementSibling?.classList?.contains("safeshare-message") ? button.nextElementSibling : null;
    if (!box) {
      box = document.createElement("div");
      box.className = "safeshare-message";
      box.setAttribute("role", "alert");
      const text = document.createElement("span");
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.textContent = "Dismiss";
      dismiss.addEventListener("click", () => {
        box.remove();
        button.focus();
      });
      box.append(text, " ", dismiss);
      button.insertAdjacentElement("afterend", box);
    }
    box.firstChild.textContent = `SafeShare: ${message}`;
  }

  function closePanel(session) {
    const entry = open.get(session);
    if (!entry) return;
    clearInterval(entry.watch);
    entry.frame.remove();
    open.delete(session);
    entry.button?.focus();
  }

  const S = globalThis.SafeShareSnapshot;
  /** How long after the click the draft is read a second time (a page that swapped it for the click shows). */
  const SETTLE_MS = 400;
  /** How often an open panel's compose window is compared with what the panel shows. */
  const WATCH_MS = 1000;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /**
   * The panel's address carries no session: the worker gives the content script a one-time ticket, which is
   * posted into the panel frame SafeShare made (postMessage to the extension's origin: the page cannot read
   * it). The worker hands the draft only to the panel that presents the ticket, from this tab, once.
   */
  function showPanel(session, ticket, compose, button, snapshot) {
    for (const s of [...open.keys()]) closePanel(s);
    const frame = document.createElement("iframe");
    const url = api.runtime.getURL("panel/panel.html");
    frame.src = url;
    frame.title = "SafeShare: share securely";
    frame.className = "safeshare-panel-frame";
    frame.setAttribute("allow", "");
    frame.addEventListener(
      "load",
      () => {
        frame.contentWindow?.postMessage({ safeshareTicket: ticket }, new URL(url).origin);
        // Focus the loaded panel (the first focus, before it loaded, may not have reached its document).
        const now = document.activeElement;
        if (!now || now === document.body || now === frame || now === button) frame.focus();
      },
      { once: true },
    );
    document.body.appendChild(frame);
    frame.focus();
    const entry = { compose, frame, button, snapshot, reported: "" };
    entry.watch = setInterval(() => watch(session, entry), WATCH_MS);
    open.set(session, entry);
  }

  /** Tell the worker (once per new difference) when the compose window no longer matches the panel's snapshot. */
  function watch(session, entry) {
    let now;
    try {
      now = adapter.read(entry.compose);
    } catch {
      return;
    }
    const parts = S.differences(entry.snapshot, now);
    const key = parts.join(",");
    if (key === entry.reported) return;
    entry.reported = key;
    api.runtime.sendMessage({ type: "compose-changed", session, parts }).catch(() => {});
  }

  /**
   * Read the draft at the click and once more a moment later; the later read is the snapshot. When the two
   * differ, the page changed the draft around the click (or the practitioner was still typing): the panel is
   * told which parts, and says so above the snapshot it shows in full.
   */
  async function snapshot(compose) {
    const first = adapter.read(compose);
    await sleep(SETTLE_MS);
    const second = adapter.read(compose);
    const unsteady = S.differences(first, second);
    return { read: second, draft: { ...(await withAttachmentBytes(second)), unsteady } };
  }

  async function onShare(compose, button) {
    button.disabled = true;
    if (button.nextElementSibling?.classList?.contains("safeshare-message")) button.nextElementSibling.remove();
    try {
      const { read, draft } = await snapshot(compose);
      const answer = await api.runtime.sendMessage({ type: "open", draft });
      if (!answer?.ok) throw new Error(answer?.error?.message ?? "SafeShare could not open.");
      showPanel(answer.value.session, answer.value.ticket, compose, button, read);
    } catch (e) {
      say(button, String(e.message ?? e));
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
      // Only the practitioner's own click or key press: a page script's button.click() or dispatched event
      // (isTrusted false) opens nothing and hands nothing to the worker.
      if (!ev.isTrusted || button.disabled) return;
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
    if (msg.type === "reread") {
      // The practitioner chose to refresh the panel's snapshot from the compose window (asked by the worker).
      if (!entry) {
        sendResponse({ ok: false, error: "The compose window is no longer open." });
        return false;
      }
      snapshot(entry.compose).then(
        ({ read, draft }) => {
          entry.snapshot = read;
          entry.reported = "";
          sendResponse({ ok: true, draft });
        },
        (e) => sendResponse({ ok: false, error: String(e.message ?? e) }),
      );
      return true;
    }
    if (msg.type === "replace") {
      if (!entry) {
        sendResponse({ ok: false, error: "The compose window is no longer open." });
        return false;
      }
      try {
        adapter.removeAttachments(entry.compose);
        if (typeof msg.subject === "string") adapter.replaceSubject(entry.compose, msg.subject);
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
