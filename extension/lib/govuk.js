/**
 * The GOV.UK Design System's markup (govuk-frontend, compiled into ../vendor/govuk-frontend.min.css), built with
 * elements rather than markup strings, for every extension page: the share panel and the views it places, and the
 * recipient's inbox and keys pages. One place for the class names and structure the styles need (a radio's input
 * before its label inside govuk-radios__item, so the styled control works), so a view only says what it asks.
 */
import { el } from "./page.js";

/** A field's label: bold (--s), as the panel's questions are one among many on a page. */
export const label = (forId, text, extra = "") => el("label", { class: `govuk-label govuk-label--s ${extra}`.trim(), for: forId, text });

/** A hint under a label or legend; null when there is no text. */
export const hint = (id, text) => (text ? el("div", { class: "govuk-hint", id, text }) : null);

/** The error message line for a field (hidden until there is a problem); `problem` is the panel's own hook. */
export const errorMessage = (id) => el("p", { class: "govuk-error-message problem", id, hidden: true });

/**
 * Show `text` in an error message line, after the visually hidden "Error:" the Design System puts before every
 * error message (a screen reader then says it is one); an empty text empties and hides the line.
 */
export function setError(line, text) {
  line.replaceChildren(...(text ? [el("span", { class: "govuk-visually-hidden", text: "Error: " }), text] : []));
  line.hidden = !text;
}

/** A fieldset with its legend (size s, m or l) and the children. */
export function fieldset(attrs, legend, size = "s", ...children) {
  const legendNode = el("legend", { class: `govuk-fieldset__legend govuk-fieldset__legend--${size}` });
  if (typeof legend === "string") legendNode.textContent = legend;
  else legendNode.append(...[].concat(legend));
  return el("fieldset", { ...attrs, class: `govuk-fieldset ${attrs.class ?? ""}`.trim() }, legendNode, ...children);
}

/**
 * Radios or checkboxes: `items` are {id, value, text, attrs?, hint?}; `kind` "radio" or "checkbox". Returns the
 * govuk-radios/govuk-checkboxes container; each input comes before its label, as the styles need.
 */
export function choices(kind, name, items, { small = false } = {}) {
  const base = kind === "radio" ? "govuk-radios" : "govuk-checkboxes";
  const box = el("div", { class: `${base}${small ? ` ${base}--small` : ""}` });
  for (const item of items) box.append(choiceItem(kind, name, item));
  return box;
}

/** One radio or checkbox item ({id, value, text, attrs?, hint?, checked?}). */
export function choiceItem(kind, name, { id, value, text, attrs = {}, hint: hintText, checked }) {
  const base = kind === "radio" ? "govuk-radios" : "govuk-checkboxes";
  const input = el("input", { class: `${base}__input`, type: kind, name, value, id, checked, ...attrs });
  const item = el("div", { class: `${base}__item` }, input, el("label", { class: `govuk-label ${base}__label`, for: id, text }));
  if (hintText) {
    const h = el("div", { class: `govuk-hint ${base}__hint`, id: `${id}-hint`, text: hintText });
    input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), h.id].filter(Boolean).join(" "));
    item.append(h);
  }
  return item;
}

/** A button: "primary" (default), "secondary" or "warning". */
export function button(attrs, text, variant = "primary") {
  const cls = `govuk-button${variant === "primary" ? "" : ` govuk-button--${variant}`} ${attrs.class ?? ""}`.trim();
  return el("button", { type: "button", ...attrs, class: cls, text });
}

const ERROR_CLASS = { INPUT: "govuk-input--error", TEXTAREA: "govuk-textarea--error", SELECT: "govuk-select--error" };

/** Mark a control invalid (aria-invalid and the Design System's red border), or clear it. */
export function markInvalid(input, on) {
  if (on) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  const cls = input.type === "file" ? "govuk-file-upload--error" : ERROR_CLASS[input.tagName];
  if (cls) input.classList.toggle(cls, on);
}

/** A form group in the error state (the red bar at its side) while its message is shown. */
export function markGroup(group, on) {
  group?.classList.toggle("govuk-form-group--error", on);
}

/**
 * A summary list (the Design System's key/value list) from [label, value] pairs; values may be nodes, and empty
 * values are left out, so a share without (say) a Cc line shows no empty row.
 */
export function summaryList(pairs, attrs = {}) {
  const dl = el("dl", { ...attrs, class: `govuk-summary-list ${attrs.class ?? ""}`.trim() });
  for (const [key, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(
      el("div", { class: "govuk-summary-list__row" }, el("dt", { class: "govuk-summary-list__key", text: key }), el("dd", { class: "govuk-summary-list__value" }, value)),
    );
  }
  return dl;
}

/** A details component (a summary the person opens to see more): `attrs` on the details, `children` inside it. */
export function details(attrs, summary, ...children) {
  return el(
    "details",
    { ...attrs, class: `govuk-details ${attrs.class ?? ""}`.trim() },
    el("summary", { class: "govuk-details__summary" }, el("span", { class: "govuk-details__summary-text", text: summary })),
    el("div", { class: "govuk-details__text" }, ...children),
  );
}

/** A form group holding a labelled textarea ({id, label, rows, maxlength}); returns [group, textarea]. */
export function textareaField({ id, label: text, rows = 3, maxlength = 4000 }) {
  const area = el("textarea", { class: "govuk-textarea", id, rows: String(rows), maxlength: String(maxlength) });
  return [el("div", { class: "govuk-form-group" }, label(id, text), area), area];
}

// -- Errors after interaction: the error summary and each field's message (the GOV.UK validation pattern) ---------

/** Add `id` to (or take it from) a control's aria-describedby, keeping the others in their order. */
function describedBy(input, id, on) {
  const ids = (input.getAttribute("aria-describedby") ?? "").split(/\s+/).filter((x) => x && x !== id);
  if (on) ids.push(id);
  if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
  else input.removeAttribute("aria-describedby");
}

/**
 * Show `message` as a field's own error, or clear it with "": the govuk-error-message line (made on first use,
 * just before the control, after its label and hint, where the Design System puts it; its id is
 * `<control id>-error`, named by the control's aria-describedby while shown), the control's error border and
 * aria-invalid, and the red bar of its form group.
 */
export function fieldError(input, message) {
  const id = `${input.id}-error`;
  let line = document.getElementById(id);
  if (!line && message) {
    line = el("p", { class: "govuk-error-message", id, hidden: true });
    input.before(line);
  }
  if (line) setError(line, message);
  markInvalid(input, !!message);
  markGroup(input.closest(".govuk-form-group"), !!message);
  describedBy(input, id, !!message);
}

/** Bring a control into view and focus, opening the details it sits in, as the summary's links do. */
export function focusField(input) {
  const closed = input.closest("details:not([open])");
  if (closed) closed.open = true;
  (input.closest(".govuk-form-group") ?? input).scrollIntoView({ block: "start" });
  input.focus();
}

/**
 * The page's error summary (`box`: a govuk-error-summary with tabindex=-1 holding a govuk-error-summary__list,
 * and the page's #alert line for what is not about a field, such as a gateway that refused or could not be
 * reached). It lists each field error as a link that moves focus to the field, in the order of the page, once
 * a form has been submitted: before that a field's error is shown only beside the field. It is hidden while it
 * has nothing to say, so nothing red is on the page before the person has done anything.
 */
export function errorSummary(box) {
  const list = box.querySelector(".govuk-error-summary__list");
  const alertLine = box.querySelector("#alert");
  /** Every field error shown on the page: control → message. */
  const errors = new Map();
  let listing = false;

  function render() {
    const shown = listing ? [...errors.keys()].filter((i) => i.isConnected) : [];
    shown.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    list.replaceChildren(
      ...shown.map((input) => {
        const a = el("a", { href: `#${input.id}`, text: errors.get(input) });
        a.addEventListener("click", (ev) => {
          ev.preventDefault();
          focusField(input);
        });
        return el("li", {}, a);
      }),
    );
    box.hidden = !list.children.length && (!alertLine || alertLine.hidden);
  }

  return {
    /** Show (or with "" clear) one field's error beside it, and in the list once a form was submitted. */
    field(input, message) {
      fieldError(input, message);
      if (message) errors.set(input, message);
      else errors.delete(input);
      render();
    },
    /** Whether the field shows an error now. */
    shows: (input) => errors.has(input),
    /** Clear every field error on the page (a form is being submitted again, or was sent). */
    clear() {
      for (const input of errors.keys()) fieldError(input, "");
      errors.clear();
      listing = false;
      render();
    },
    /** A submit that failed: list the fields' errors, then move focus to the summary, as the pattern says. */
    show() {
      listing = true;
      render();
      if (box.hidden) return;
      box.focus();
      box.scrollIntoView({ block: "start" });
    },
    get count() {
      return [...errors.keys()].filter((i) => i.isConnected).length;
    },
  };
}

/**
 * The checks of one form, run the GOV.UK way against the page's `summary` (errorSummary): nothing before the
 * person does something; a field they changed is checked when they leave it (its message beside it); Submit
 * checks every field shown and, when one fails, lists them in the summary and focuses it; a message goes as
 * soon as its field is right again. `fields` are {input, check: () => message or "", also?: [other inputs
 * whose checks depend on this one]}. A refusal only the submit can find out (a wrong passphrase) is shown with
 * `refuse` and stays until the next submit, since typing cannot tell whether it is fixed.
 *
 * @returns {{submit: () => boolean, refuse: (input: Element, message: string) => void, done: () => void}}
 */
export function formChecks(summary, fields) {
  const changed = new Set();
  const refused = new Set();
  const byInput = new Map(fields.map((f) => [f.input, f]));
  const shown = (input) => !input.closest("[hidden]");

  const recheck = (f, { leaving = false } = {}) => {
    if (refused.has(f.input) || !shown(f.input)) return;
    const message = f.check();
    // Leaving the field shows its message; typing only ever clears one (a field half typed is not wrong yet).
    if (leaving) summary.field(f.input, message);
    else if (!message && summary.shows(f.input)) summary.field(f.input, "");
  };

  for (const f of fields) {
    const edited = () => {
      changed.add(f.input);
      if (summary.shows(f.input)) recheck(f);
      for (const other of f.also ?? []) if (summary.shows(other)) recheck(byInput.get(other));
    };
    if (f.input.type === "file") {
      // A file chosen is the field left: there is no typing to wait for.
      f.input.addEventListener("change", () => {
        edited();
        recheck(f, { leaving: true });
      });
    } else {
      f.input.addEventListener("input", edited);
      f.input.addEventListener("blur", () => {
        if (changed.has(f.input)) recheck(f, { leaving: true });
      });
    }
  }

  return {
    submit() {
      summary.clear();
      refused.clear();
      for (const f of fields) if (shown(f.input)) summary.field(f.input, f.check());
      if (!summary.count) return true;
      summary.show();
      return false;
    },
    refuse(input, message) {
      refused.add(input);
      summary.field(input, message);
      summary.show();
    },
    done() {
      summary.clear();
      refused.clear();
      changed.clear();
    },
  };
}

// -- Tabs ------------------------------------------------------------------------------------------------------

/**
 * govuk-frontend's Tabs component, with its keyboard model, for pages that do not load govuk-frontend's
 * JavaScript (the extension bundles only its styles). `root` is a govuk-tabs element in the Design System's
 * markup: a govuk-tabs__list of govuk-tabs__list-item, each holding an <a class="govuk-tabs__tab"
 * href="#panel-id">, and the govuk-tabs__panel sections. As govuk-frontend does: role tablist/tab/tabpanel,
 * one tab stop (the selected tab; the others tabindex -1), aria-selected, the other panels hidden, Left and
 * Right arrows move to the previous or next tab and select it. Unlike govuk-frontend the tabs stay at every
 * width (a phone gets the same model, not a list of links) and the address's #hash is left alone: the inbox
 * uses it to say which share is open. `onSelect(panelId)` is told each time a tab is chosen.
 *
 * @returns {{select: (panelId: string, opts?: {focus?: boolean}) => void, selected: () => string}}
 */
export function tabs(root, { onSelect = () => {} } = {}) {
  // govuk-frontend's tab styles apply once its script has run (this class is what that script sets).
  document.body.classList.add("govuk-frontend-supported");
  const list = root.querySelector(".govuk-tabs__list");
  const links = [...root.querySelectorAll("a.govuk-tabs__tab")];
  const panelOf = (a) => root.querySelector(`#${CSS.escape(a.hash.slice(1))}`);
  list.setAttribute("role", "tablist");
  for (const a of links) {
    a.parentElement.setAttribute("role", "presentation");
    a.setAttribute("role", "tab");
    a.setAttribute("aria-controls", a.hash.slice(1));
    if (!a.id) a.id = `tab_${a.hash.slice(1)}`;
    const panel = panelOf(a);
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", a.id);
  }
  const current = () => links.find((a) => a.getAttribute("aria-selected") === "true") ?? links[0];

  /** The tab for `panelId` selected and its panel alone shown (the first tab when none is named). */
  function show(panelId, focus) {
    for (const a of links) {
      const on = a.hash.slice(1) === panelId;
      a.setAttribute("aria-selected", String(on));
      a.tabIndex = on ? 0 : -1;
      a.parentElement.classList.toggle("govuk-tabs__list-item--selected", on);
      const panel = panelOf(a);
      panel.classList.toggle("govuk-tabs__panel--hidden", !on);
      panel.hidden = !on;
      if (on && focus) a.focus();
    }
  }

  function select(panelId, { focus = false } = {}) {
    show(panelId, focus);
    onSelect(panelId);
  }

  const marked = links.find((a) => a.parentElement.classList.contains("govuk-tabs__list-item--selected")) ?? links[0];
  show(marked.hash.slice(1), false);
  for (const a of links) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      select(a.hash.slice(1));
    });
    a.addEventListener("keydown", (ev) => {
      const step = { ArrowLeft: -1, Left: -1, ArrowRight: 1, Right: 1 }[ev.key];
      if (!step) return;
      ev.preventDefault();
      const next = links[links.indexOf(current()) + step];
      if (next) select(next.hash.slice(1), { focus: true });
    });
  }
  return { select, selected: () => current().hash.slice(1) };
}
