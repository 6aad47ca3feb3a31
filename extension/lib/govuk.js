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
