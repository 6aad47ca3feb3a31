/**
 * A tiny DOM for unit-testing the webmail adapters in Node against saved pages: an HTML parser good enough
 * for well-formed pages, elements with attributes, text, value, events (capture, bubbling, preventDefault),
 * and querySelector / querySelectorAll / closest / matches for the selectors the adapters use (tag, #id,
 * .class, [attr], [attr="v"], [attr^="v"], [attr*="v"], [attr$="v"], descendant and child combinators, comma
 * lists). An iframe's document is attached by hand (`iframe.contentDocument = parseHTML(...)`).
 */

const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]);
const RAW = new Set(["script", "style", "textarea", "title"]);

function decode(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos|nbsp|#39);/gi, (m, e) => {
    const k = e.toLowerCase();
    if (k[0] === "#") return String.fromCodePoint(k[1] === "x" ? parseInt(k.slice(2), 16) : parseInt(k.slice(1), 10));
    return { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" }[k];
  });
}

const escapeText = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const escapeAttr = (s) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;");

class Node {
  constructor(doc) {
    this.ownerDocument = doc;
    this.parentNode = null;
  }
  get parentElement() {
    return this.parentNode && this.parentNode.nodeType === 1 ? this.parentNode : null;
  }
  remove() {
    if (!this.parentNode) return;
    const kids = this.parentNode.childNodes;
    kids.splice(kids.indexOf(this), 1);
    this.parentNode = null;
  }
}

class NodeList {
  constructor(items) {
    items.forEach((e, i) => {
      this[i] = e;
    });
    this.length = items.length;
  }
  item(i) {
    return this[i] ?? null;
  }
  forEach(fn) {
    for (let i = 0; i < this.length; i++) fn(this[i], i, this);
  }
  *[Symbol.iterator]() {
    for (let i = 0; i < this.length; i++) yield this[i];
  }
}

class Text extends Node {
  constructor(doc, data) {
    super(doc);
    this.nodeType = 3;
    this.data = data;
  }
  get textContent() {
    return this.data;
  }
  serialize() {
    return escapeText(this.data);
  }
}

export class Element extends Node {
  constructor(doc, tag) {
    super(doc);
    this.nodeType = 1;
    this.localName = tag.toLowerCase();
    this.tagName = tag.toUpperCase();
    this.attrs = new Map();
    this.childNodes = [];
    this.listeners = new Map();
    this._value = undefined;
  }
  get children() {
    return this.childNodes.filter((n) => n.nodeType === 1);
  }
  get firstElementChild() {
    return this.children[0] ?? null;
  }
  getAttribute(n) {
    return this.attrs.has(n.toLowerCase()) ? this.attrs.get(n.toLowerCase()) : null;
  }
  setAttribute(n, v) {
    this.attrs.set(n.toLowerCase(), String(v));
  }
  hasAttribute(n) {
    return this.attrs.has(n.toLowerCase());
  }
  getAttributeNames() {
    return [...this.attrs.keys()];
  }
  removeAttribute(n) {
    this.attrs.delete(n.toLowerCase());
  }
  get id() {
    return this.getAttribute("id") ?? "";
  }
  get className() {
    return this.getAttribute("class") ?? "";
  }
  get textContent() {
    return this.childNodes.map((n) => n.textContent).join("");
  }
  set textContent(v) {
    this.childNodes = [];
    if (v) this.append(new Text(this.ownerDocument, String(v)));
  }
  get innerHTML() {
    return this.childNodes.map((n) => n.serialize()).join("");
  }
  set innerHTML(html) {
    this.childNodes = [];
    parseInto(this, String(html));
  }
  serialize() {
    const attrs = [...this.attrs].map(([k, v]) => (v === "" ? ` ${k}` : ` ${k}="${escapeAttr(v)}"`)).join("");
    if (VOID.has(this.localName)) return `<${this.localName}${attrs}>`;
    return `<${this.localName}${attrs}>${this.innerHTML}</${this.localName}>`;
  }
  get value() {
    if (this._value !== undefined) return this._value;
    if (this.localName === "textarea") return this.textContent;
    if (this.localName === "select") {
      const opts = this.select("option");
      const sel = opts.find((o) => o.hasAttribute("selected")) ?? opts[0];
      return sel ? sel.getAttribute("value") ?? sel.textContent : "";
    }
    return this.getAttribute("value") ?? "";
  }
  set value(v) {
    this._value = String(v);
  }
  append(...nodes) {
    for (const n of nodes) {
      const node = typeof n === "string" ? new Text(this.ownerDocument, n) : n;
      node.remove();
      node.parentNode = this;
      this.childNodes.push(node);
    }
  }
  insertAdjacentElement(where, el) {
    el.remove();
    const parent = where === "afterend" || where === "beforebegin" ? this.parentNode : this;
    const kids = parent.childNodes;
    const at = { beforebegin: kids.indexOf(this), afterend: kids.indexOf(this) + 1, afterbegin: 0, beforeend: kids.length }[where];
    el.parentNode = parent;
    kids.splice(at, 0, el);
    return el;
  }
  *descendants() {
    for (const c of this.children) {
      yield c;
      yield* c.descendants();
    }
  }
  /** A static NodeList, like a browser's: indexable and iterable, but not an Array (no map/filter). */
  querySelectorAll(selector) {
    return new NodeList(this.select(selector));
  }
  select(selector) {
    const groups = parseSelector(selector);
    return [...this.descendants()].filter((el) => groups.some((g) => matchComplex(el, g)));
  }
  querySelector(selector) {
    return this.select(selector)[0] ?? null;
  }
  matches(selector) {
    return parseSelector(selector).some((g) => matchComplex(this, g));
  }
  closest(selector) {
    for (let n = this; n && n.nodeType === 1; n = n.parentNode) if (n.matches(selector)) return n;
    return null;
  }
  contains(other) {
    for (let n = other; n; n = n.parentNode) if (n === this) return true;
    return false;
  }
  addEventListener(type, fn, options) {
    const capture = options === true || !!options?.capture;
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push({ fn, capture });
  }
  /**
   * One event object for every listener (its own properties, e.g. key and ctrlKey, are kept): capturing
   * listeners from the root down, then the target, then bubbling listeners up (when the event bubbles).
   */
  dispatchEvent(ev) {
    const up = [];
    for (let n = this; n; n = n.parentNode) up.push(n);
    const phases = [
      ...up.slice(1).reverse().map((n) => [n, true]),
      [this, null],
      ...(ev.bubbles ? up.slice(1) : []).map((n) => [n, false]),
    ];
    let stopped = false;
    let immediate = false;
    const event = {
      ...ev,
      type: ev.type,
      bubbles: !!ev.bubbles,
      target: this,
      currentTarget: null,
      defaultPrevented: false,
      preventDefault() {
        this.defaultPrevented = true;
      },
      stopPropagation() {
        stopped = true;
      },
      stopImmediatePropagation() {
        stopped = immediate = true;
      },
    };
    for (const [n, capture] of phases) {
      event.currentTarget = n;
      for (const l of n.listeners?.get(ev.type) ?? []) {
        if (capture !== null && l.capture !== capture) continue;
        l.fn.call(n, event);
        if (immediate) break;
      }
      if (stopped) break;
    }
    return !event.defaultPrevented;
  }
  click() {
    this.dispatchEvent({ type: "click", bubbles: true });
  }
}

class Document extends Element {
  constructor() {
    super(null, "#document");
    this.ownerDocument = this;
    this.nodeType = 9;
    this.defaultView = null;
  }
  get documentElement() {
    return this.children.find((c) => c.localName === "html") ?? this.children[0] ?? null;
  }
  get body() {
    return this.querySelector("body");
  }
  createElement(tag) {
    return new Element(this, tag);
  }
  createTextNode(data) {
    return new Text(this, data);
  }
}

function parseInto(root, html) {
  const doc = root.ownerDocument;
  const stack = [root];
  const top = () => stack[stack.length - 1];
  const re = /<!--[\s\S]*?-->|<![^>]*>|<\/([A-Za-z][\w:-]*)\s*>|<([A-Za-z][\w:-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*)\s*(\/?)>|[^<]+|</g;
  let m;
  while ((m = re.exec(html))) {
    const [tok, close, open, attrText, selfClose] = m;
    if (tok.startsWith("<!")) continue;
    if (close) {
      const name = close.toLowerCase();
      const at = stack.map((e) => e.localName).lastIndexOf(name);
      if (at > 0) stack.length = at;
      continue;
    }
    if (open) {
      const el = new Element(doc, open);
      for (const a of attrText.matchAll(/([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
        el.setAttribute(a[1], decode(a[2] ?? a[3] ?? a[4] ?? ""));
      }
      top().append(el);
      const name = el.localName;
      if (RAW.has(name)) {
        const end = html.toLowerCase().indexOf(`</${name}`, re.lastIndex);
        const raw = html.slice(re.lastIndex, end < 0 ? html.length : end);
        if (raw) el.append(new Text(doc, name === "script" || name === "style" ? raw : decode(raw.replace(/^\n/, ""))));
        re.lastIndex = end < 0 ? html.length : html.indexOf(">", end) + 1;
        continue;
      }
      if (!VOID.has(name) && !selfClose) stack.push(el);
      continue;
    }
    top().append(new Text(doc, decode(tok)));
  }
}

/** @returns {Document} */
export function parseHTML(html) {
  const doc = new Document();
  parseInto(doc, html);
  return doc;
}

// -- selectors ------------------------------------------------------------------------------------

function parseCompound(text) {
  const c = { tag: null, ids: [], classes: [], attrs: [] };
  const re = /^\*|^[A-Za-z][\w-]*|#[\w-]+|\.[\w-]+|\[\s*([\w:-]+)\s*(?:([\^*$|~]?=)\s*(?:"([^"]*)"|'([^']*)'|([^\]\s]+)))?\s*\]/g;
  let m;
  let pos = 0;
  while ((m = re.exec(text))) {
    if (m.index !== pos) throw new Error(`unsupported selector: ${text}`);
    pos = re.lastIndex;
    const t = m[0];
    if (t === "*") continue;
    if (t[0] === "#") c.ids.push(t.slice(1));
    else if (t[0] === ".") c.classes.push(t.slice(1));
    else if (t[0] === "[") c.attrs.push({ name: m[1].toLowerCase(), op: m[2] ?? null, value: m[3] ?? m[4] ?? m[5] ?? "" });
    else c.tag = t.toLowerCase();
    re.lastIndex = pos;
    if (pos >= text.length) break;
  }
  if (pos !== text.length) throw new Error(`unsupported selector: ${text}`);
  return c;
}

function splitTopLevel(s, sep) {
  const out = [];
  let depth = 0;
  let quote = null;
  let cur = "";
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "[") depth++;
    else if (ch === "]") depth--;
    else if (depth === 0 && sep(ch)) {
      out.push(cur);
      cur = "";
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

const cache = new Map();
/** A list of complex selectors, each [{compound, combinator}] from left to right. */
function parseSelector(selector) {
  if (cache.has(selector)) return cache.get(selector);
  const groups = splitTopLevel(selector, (ch) => ch === ",").map((g) => {
    const tokens = splitTopLevel(g.trim().replace(/\s*>\s*/g, " > "), (ch) => /\s/.test(ch)).filter(Boolean);
    const parts = [];
    let comb = " ";
    for (const t of tokens) {
      if (t === ">") comb = ">";
      else {
        parts.push({ compound: parseCompound(t), combinator: comb });
        comb = " ";
      }
    }
    return parts;
  });
  cache.set(selector, groups);
  return groups;
}

function matchCompound(el, c) {
  if (c.tag && el.localName !== c.tag) return false;
  for (const id of c.ids) if (el.getAttribute("id") !== id) return false;
  const classes = (el.getAttribute("class") ?? "").split(/\s+/);
  for (const cl of c.classes) if (!classes.includes(cl)) return false;
  for (const a of c.attrs) {
    const v = el.getAttribute(a.name);
    if (v === null) return false;
    if (a.op === "=" && v !== a.value) return false;
    if (a.op === "^=" && !(a.value && v.startsWith(a.value))) return false;
    if (a.op === "*=" && !(a.value && v.includes(a.value))) return false;
    if (a.op === "$=" && !(a.value && v.endsWith(a.value))) return false;
    if (a.op === "~=" && !v.split(/\s+/).includes(a.value)) return false;
  }
  return true;
}

function matchComplex(el, parts) {
  const last = parts.length - 1;
  if (!matchCompound(el, parts[last].compound)) return false;
  let node = el;
  for (let i = last; i > 0; i--) {
    const comb = parts[i].combinator;
    const want = parts[i - 1].compound;
    if (comb === ">") {
      node = node.parentElement;
      if (!node || !matchCompound(node, want)) return false;
    } else {
      do node = node.parentElement;
      while (node && !matchCompound(node, want));
      if (!node) return false;
    }
  }
  return true;
}
