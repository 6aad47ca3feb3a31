/**
 * HTML to plain text, for any webmail whose editor hands SafeShare HTML: the text/plain part of a shared
 * message and the panel's snapshot are computed from the editor's DOM with this, not with innerText, so the
 * result does not depend on the page's style sheet. It knows no webmail; it skips what rich-text editors mark as
 * their own editing aids (TinyMCE's data-mce-bogus="all") and prefers an editor's copy of a link's address
 * (data-mce-href), which keeps what the author typed.
 *
 * A classic script (content scripts cannot be modules): it defines globalThis.SafeShareHtmlText; it is injected
 * before the adapters that use it (manifest.json, background.js's Roundcube registration).
 */
(function () {
  const SKIP = new Set(["script", "style", "head", "title", "template", "noscript"]);
  /** Blocks that end a paragraph in text (a blank line), and blocks that only end a line. */
  const PARAGRAPH = new Set(["p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "figure", "dl"]);
  const LINE = new Set(["div", "tr", "dt", "dd", "address", "section", "article", "header", "footer", "aside", "nav", "caption", "center"]);

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

  globalThis.SafeShareHtmlText = { htmlText };
})();
