/**
 * Roundcube (self-hosted, 1.6 "elastic" skin): the only file that knows Roundcube's compose DOM.
 *
 * What it relies on (Roundcube's form field names and ids, stable across skins):
 * - the body: textarea#composebody (name="_message"); the compose form holds it. In the HTML editor
 *   (TinyMCE 5) that textarea is hidden and the text being written lives in the same-origin iframe
 *   #composebody_ifr, whose body#tinymce is contenteditable; TinyMCE copies it into the textarea only when
 *   Roundcube saves or sends. The hidden field _is_html says which editor is in use ("1": HTML), and the
 *   user can switch at any time, so the mode is looked up on every read and replace, never remembered;
 * - the Send button: button.send / a.send (Roundcube's names begin with an icon-font character, so the
 *   name is not matched);
 * - recipients: the recipient widget's visible chips next to the fields name="_to" / "_cc" (or the field
 *   itself when it is a visible text box); the hidden field behind the widget is never read;
 * - subject: name="_subject";
 * - attachments: #attachment-list li (id "rcmfile…"); Roundcube uploads them at once, so they are fetched
 *   back with ?_task=mail&_action=display-attachment&_file=ID&_id=COMPOSE_ID; each has a delete link a.delete.
 *
 * Content scripts run in an isolated world: the page's `tinymce` object is out of reach, so the HTML editor is
 * read and changed through its DOM only, and then told about the change with the events it listens to.
 */
(function () {
  const K = globalThis.SafeShareAdapterKit;
  const BODY = "textarea#composebody";
  const SEND = "button.send, a.send";
  const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]);
  const SKIP = new Set(["script", "style", "head", "title", "template", "noscript"]);
  /** Blocks that end a paragraph in text (a blank line), and blocks that only end a line. */
  const PARAGRAPH = new Set(["p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "figure", "dl"]);
  const LINE = new Set(["div", "tr", "dt", "dd", "address", "section", "article", "header", "footer", "aside", "nav", "caption", "center"]);

  function composeId(doc, compose) {
    return compose.querySelector('input[name="_id"]')?.value ?? doc.querySelector('input[name="_id"]')?.value ?? "";
  }

  function items(doc) {
    return [...doc.querySelectorAll("#attachment-list li")].filter((li) => /^rcmfile/.test(li.getAttribute("id") ?? ""));
  }

  function textarea(compose) {
    return compose.querySelector(BODY) ?? compose.ownerDocument.querySelector(BODY);
  }

  function field(compose, name) {
    return compose.querySelector(`[name="${name}"]`) ?? compose.ownerDocument.querySelector(`[name="${name}"]`);
  }

  /**
   * The recipients Roundcube visibly shows for field `name`: the recipient widget's chips (ul.recipient-input
   * li.recipient) and what is typed in its input, or the field itself when it is shown as a plain text box.
   * The hidden _to/_cc textarea behind the widget is never read, so an address slipped into it (or an invisible
   * chip) is not shared with.
   */
  function shownRecipients(compose, name) {
    const area = field(compose, name);
    if (!area) return [];
    const widget = area.parentElement?.querySelector("ul.recipient-input");
    const found = [];
    const add = (list) => list.forEach((a) => found.includes(a) || found.push(a));
    if (widget) {
      if (!K.isShown(widget)) return [];
      for (const li of widget.querySelectorAll("li.recipient")) {
        if (K.isShown(li)) add(K.emailsIn(`${li.getAttribute("title") ?? ""} ${K.text(li)}`));
      }
      for (const input of widget.querySelectorAll("li.input input")) if (K.isShown(input)) add(K.emailsIn(input.value));
      return found;
    }
    return K.isShown(area) ? K.emailsIn(area.value) : [];
  }

  /** The HTML editor's editable body (TinyMCE's iframe is "<textarea id>_ifr"), or null when it is not open. */
  function editorBody(compose) {
    const area = textarea(compose);
    const id = area?.getAttribute("id") || "composebody";
    const frame = compose.ownerDocument.querySelector(`iframe#${id}_ifr`);
    let inner;
    try {
      inner = frame?.contentDocument ?? null;
    } catch {
      inner = null; // not same-origin: not Roundcube's editor
    }
    const body = inner?.body ?? null;
    return body && body.getAttribute("contenteditable") === "true" ? body : null;
  }

  /** "html" when the HTML editor is in use, "plain" otherwise (no _is_html field: whichever editor is open). */
  function mode(compose) {
    const flag = field(compose, "_is_html")?.value;
    if (flag === "1") return "html";
    if (flag === "0") return "plain";
    return editorBody(compose) ? "html" : "plain";
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

  /**
   * A plain-text version of the editor's content for the message's text/plain part: paragraphs separated by a
   * blank line, list items as "- " or "1. ", quotes as "> ", a link's address after its words. Computed from
   * the DOM (not innerText) so that it does not depend on the editor's style sheet.
   */
  function htmlText(root) {
    let out = "";
    const endLine = (n) => {
      if (!out) return;
      out = out.replace(/[ \t]+$/, "");
      const have = /\n*$/.exec(out)[0].length;
      if (have < n) out += "\n".repeat(n - have);
    };
    const walk = (node, ctx) => {
      for (const c of node.childNodes) {
        if (c.nodeType === 3) {
          let t = c.data.replace(/\uFEFF/g, "");
          if (!ctx.pre) {
            t = t.replace(/[ \t\r\n\f]+/g, " ");
            if (out === "" || /[\n ]$/.test(out)) t = t.replace(/^ /, "");
          }
          out += t.replace(/\u00a0/g, " ");
          continue;
        }
        if (c.nodeType !== 1) continue;
        const tag = c.localName;
        const bogus = c.getAttribute("data-mce-bogus");
        if (bogus === "all" || SKIP.has(tag)) continue;
        if (tag === "br") {
          if (bogus === null) out += "\n";
        } else if (tag === "img") {
          out += c.getAttribute("alt") ?? "";
        } else if (tag === "hr") {
          endLine(1);
          out += "----";
          endLine(1);
        } else if (tag === "ul" || tag === "ol") {
          endLine(ctx.depth ? 1 : 2);
          walk(c, { ...ctx, depth: ctx.depth + 1, list: { ordered: tag === "ol", n: 0 } });
          endLine(ctx.depth ? 1 : 2);
        } else if (tag === "li") {
          endLine(1);
          const list = ctx.list ?? { ordered: false, n: 0 };
          out += "  ".repeat(Math.max(0, ctx.depth - 1)) + (list.ordered ? `${++list.n}. ` : "- ");
          walk(c, ctx);
          endLine(1);
        } else if (tag === "blockquote") {
          const before = out;
          out = "";
          walk(c, { ...ctx, depth: 0, list: null });
          const quoted = out.replace(/\s+$/, "").split("\n").map((l) => (l ? `> ${l}` : ">")).join("\n");
          out = before;
          endLine(2);
          out += quoted;
          endLine(2);
        } else if (PARAGRAPH.has(tag) || LINE.has(tag)) {
          const n = PARAGRAPH.has(tag) ? 2 : 1;
          endLine(n);
          walk(c, { ...ctx, pre: ctx.pre || tag === "pre" });
          endLine(n);
        } else if (tag === "td" || tag === "th") {
          walk(c, ctx);
          out += " ";
        } else if (tag === "a") {
          const start = out.length;
          walk(c, ctx);
          const words = out.slice(start).trim();
          const href = (c.getAttribute("data-mce-href") ?? c.getAttribute("href") ?? "").trim();
          if (href && !href.startsWith("#") && href !== words && href !== `mailto:${words}`) out += ` <${href}>`;
        } else {
          walk(c, ctx);
        }
      }
    };
    walk(root, { pre: false, depth: 0, list: null });
    return out
      .split("\n")
      .map((l) => l.replace(/[ \t]+$/, ""))
      .join("\n")
      .replace(/\n{3,}/g, "\n\n")
      .replace(/^\n+|\s+$/g, "");
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
      .map((p) => `<p>${K.escapeHtml(p).replace(/\n/g, "<br>")}</p>`)
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

  /** @type {WebmailAdapter} (the contract in adapters/kit.js) */
  const adapter = {
    name: "roundcube",
    findComposes(doc) {
      const body = doc.querySelector(BODY);
      if (!body) return [];
      return [body.closest("form") ?? doc.body];
    },
    anchor(compose) {
      return compose.querySelector(SEND) ?? compose.ownerDocument.querySelector(SEND);
    },
    /** Which editor the draft is in: "html" (TinyMCE) or "plain". */
    mode,
    read(compose) {
      const doc = compose.ownerDocument;
      const id = composeId(doc, compose);
      const attachments = items(doc).map((li) => {
        const nameEl = li.querySelector(".attachment-name");
        const raw = (nameEl ? nameEl.textContent : li.getAttribute("title") || li.textContent || "attachment").trim();
        const file = li.getAttribute("id");
        return {
          name: raw,
          type: li.getAttribute("data-type") || "",
          url: `?_task=mail&_action=display-attachment&_file=${encodeURIComponent(file)}&_id=${encodeURIComponent(id)}`,
        };
      });
      let text = textarea(compose)?.value ?? "";
      let html = "";
      if (mode(compose) === "html") {
        const body = editorBody(compose);
        if (!body) throw new Error("Roundcube's editor is still starting. Nothing was shared: wait a moment, then choose Share securely again.");
        html = cleanHtml(body);
        text = htmlText(body);
      }
      return {
        webmail: "roundcube",
        to: shownRecipients(compose, "_to"),
        cc: shownRecipients(compose, "_cc"),
        subject: field(compose, "_subject")?.value ?? "",
        text,
        html,
        attachments,
      };
    },
    /**
     * Leave only `text` in the draft, whichever editor is open now. In the HTML editor both the editor and the
     * hidden textarea are replaced (Roundcube sends the textarea, which TinyMCE refreshes from the editor on
     * save), and TinyMCE is told with the input event it records as a change (an undo level, the draft marked
     * changed). In either mode Roundcube is then nudged (a keypress, which it counts as typing) to overwrite
     * the copy of the form it keeps in the browser's localStorage, which still holds the shared content. TinyMCE's
     * Undo, which would bring the shared content back, is refused from then on (guardUndo).
     */
    replaceBody(compose, text) {
      const area = textarea(compose);
      const body = editorBody(compose);
      if (body) {
        fillEditor(body, text);
        fire(body, "input", { inputType: "insertReplacementText" });
        guardUndo(body, compose.ownerDocument);
      }
      if (mode(compose) === "plain") K.setFieldValue(area, text);
      else K.setFieldValue(area, body ? cleanHtml(body) : paragraphsHtml(text)); // no editor yet: it starts from this
      fire(area, "keypress");
    },
    removeAttachments(compose) {
      const links = items(compose.ownerDocument)
        .map((li) => li.querySelector("a.delete"))
        .filter(Boolean);
      links.forEach(K.click);
      return links.length;
    },
  };
  /** Pure helpers, exposed for the unit tests. */
  adapter.htmlText = htmlText;
  adapter.cleanHtml = cleanHtml;
  globalThis.SafeShareAdapters.roundcube = adapter;
})();
