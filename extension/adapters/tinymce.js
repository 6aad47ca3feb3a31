/**
 * TinyMCE (5), the HTML editor Roundcube and other self-hosted webmails embed, as a content script sees it: its
 * editable iframe body, the HTML it would save (without its editing aids), replacing its content so that it
 * records the change, and refusing its Undo after a share. It knows no webmail: the adapter says which textarea
 * the editor took over.
 *
 * Content scripts run in an isolated world: the page's `tinymce` object is out of reach, so the editor is read
 * and changed through its DOM only, and then told about the change with the events it listens to.
 *
 * A classic script (content scripts cannot be modules): it defines globalThis.SafeShareTinyMce; it is injected
 * after adapters/kit.js and before the adapters that use it (background.js's Roundcube registration).
 */
(function () {
  const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]);

  /**
   * The editable body of the TinyMCE editor that took over `textarea` (its iframe is "<textarea id>_ifr", in
   * `doc`), or null when that editor is not open. `fallbackId` names the textarea when it is not found.
   */
  function editorBody(doc, textarea, fallbackId) {
    const id = textarea?.getAttribute("id") || fallbackId;
    const frame = doc.querySelector(`iframe#${id}_ifr`);
    let inner;
    try {
      inner = frame?.contentDocument ?? null;
    } catch {
      inner = null; // not same-origin: not a TinyMCE editor of this page
    }
    const body = inner?.body ?? null;
    return body && body.getAttribute("contenteditable") === "true" ? body : null;
  }

  const escapeText = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\u00a0/g, "&nbsp;");
  const escapeAttr = (s) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;");

  /**
   * The editor's content as the HTML TinyMCE itself would save, without its editing aids: elements marked
   * data-mce-bogus="all" are dropped, other bogus elements unwrapped, data-mce-* attributes removed (their
   * data-mce-href/src/style copies, which keep the author's original value, win), caret markers removed.
   */
  function cleanHtml(node) {
    let out = "";
    for (const c of node.childNodes) {
      if (c.nodeType === 3) {
        out += escapeText(c.data.replace(/\uFEFF/g, ""));
        continue;
      }
      if (c.nodeType !== 1) continue;
      const tag = c.localName;
      const bogus = c.getAttribute("data-mce-bogus");
      if (bogus === "all" || tag === "script") continue;
      if (bogus !== null) {
        out += cleanHtml(c);
        continue;
      }
      let attrs = "";
      for (const name of c.getAttributeNames()) {
        if (name.startsWith("data-mce-")) continue;
        const value = c.getAttribute(`data-mce-${name}`) ?? c.getAttribute(name);
        attrs += value === "" ? ` ${name}` : ` ${name}="${escapeAttr(value)}"`;
      }
      out += VOID.has(tag) ? `<${tag}${attrs}>` : `<${tag}${attrs}>${cleanHtml(c)}</${tag}>`;
    }
    return out;
  }

  /** A line of the notification, with its web addresses as links; built from DOM nodes, never from markup. */
  function appendLinked(parent, line) {
    const doc = parent.ownerDocument;
    for (const part of line.split(/(https?:\/\/[^\s<>"]+)/)) {
      if (!part) continue;
      if (!/^https?:\/\//.test(part)) {
        parent.append(doc.createTextNode(part));
        continue;
      }
      const url = part.replace(/[.,;:!?)]+$/, "");
      const a = doc.createElement("a");
      a.setAttribute("href", url);
      a.append(doc.createTextNode(url));
      parent.append(a);
      if (url.length < part.length) parent.append(doc.createTextNode(part.slice(url.length)));
    }
  }

  /** Replace the editor's whole content with `text`: one <p> per paragraph, <br> between its lines. */
  function fillEditor(body, text) {
    const doc = body.ownerDocument;
    body.textContent = "";
    for (const para of String(text).split(/\n{2,}/)) {
      const p = doc.createElement("p");
      const lines = para.split("\n");
      lines.forEach((line, i) => {
        if (i) p.append(doc.createElement("br"));
        appendLinked(p, line);
      });
      if (!para) p.append(doc.createElement("br"));
      body.append(p);
    }
  }

  /** The same paragraphs as markup, for a textarea TinyMCE has not read yet. */
  function paragraphsHtml(text) {
    return String(text)
      .split(/\n{2,}/)
      .map((p) => `<p>${globalThis.SafeShareAdapterKit.escapeHtml(p).replace(/\n/g, "<br>")}</p>`)
      .join("");
  }

  function fire(el, type, init = {}) {
    const view = el.ownerDocument?.defaultView;
    const Ev = (type === "input" ? view?.InputEvent ?? globalThis.InputEvent : null) ?? view?.Event ?? globalThis.Event;
    if (typeof Ev === "function") el.dispatchEvent(new Ev(type, { bubbles: true, ...init }));
  }

  /** TinyMCE 5's undo icon (its default icon pack): finds the toolbar's Undo button in any language. */
  const UNDO_ICON = "M6.4 8H12c3.7";
  const guarded = new WeakSet();

  function isUndoButton(target) {
    const button = target?.closest?.(".tox-tinymce button");
    if (!button) return false;
    if (/^undo$/i.test(button.getAttribute("aria-label") ?? "")) return true;
    return (button.querySelector("svg path")?.getAttribute("d") ?? "").startsWith(UNDO_ICON);
  }

  const isUndoKey = (ev) => (ev.ctrlKey || ev.metaKey) && !ev.shiftKey && !ev.altKey && (String(ev.key).toLowerCase() === "z" || ev.code === "KeyZ");

  function refuse(ev) {
    ev.preventDefault();
    ev.stopImmediatePropagation?.();
  }

  /**
   * TinyMCE keeps its own undo history in the page's memory, out of a content script's reach: after a share,
   * Undo (Ctrl/Cmd+Z in the editor, or the toolbar's Undo button) would bring the shared content back into the
   * draft, ready to be sent by email. So Undo is refused for the rest of this compose window's life, before
   * TinyMCE sees it (capturing listeners on both windows). Typing, Redo and everything else are untouched.
   */
  function guardUndo(body, topDoc) {
    const inner = body.ownerDocument;
    const editorTarget = inner.defaultView ?? inner;
    if (!guarded.has(editorTarget)) {
      guarded.add(editorTarget);
      editorTarget.addEventListener("keydown", (ev) => isUndoKey(ev) && refuse(ev), true);
      editorTarget.addEventListener("beforeinput", (ev) => ev.inputType === "historyUndo" && refuse(ev), true);
    }
    const pageTarget = topDoc.defaultView ?? topDoc;
    if (!guarded.has(pageTarget)) {
      guarded.add(pageTarget);
      for (const type of ["pointerdown", "mousedown", "mouseup", "click", "touchstart", "touchend"]) {
        pageTarget.addEventListener(type, (ev) => isUndoButton(ev.target) && refuse(ev), true);
      }
      for (const type of ["keydown", "keyup"]) {
        pageTarget.addEventListener(type, (ev) => (ev.key === "Enter" || ev.key === " ") && isUndoButton(ev.target) && refuse(ev), true);
      }
    }
  }

  globalThis.SafeShareTinyMce = { editorBody, cleanHtml, fillEditor, paragraphsHtml, fire, guardUndo };
})();
