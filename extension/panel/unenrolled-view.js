/**
 * Recipients without a SafeShare key (issue 10), in the panel: the one choice for every such address (the
 * gateway takes one mode per share), the passphrase field with show/hide, its rule and a suggested strong one.
 * The passphrase lives only in this field and in the share request: never stored, never sent to the webmail page.
 */
import { el } from "../lib/page.js";
import { setError } from "../lib/govuk.js";
import { CHOICES, PASSPHRASE, PASSPHRASE_RULE, generatePassphrase, passphraseProblem } from "./unenrolled.js";

/**
 * Show the choice for `unknown` addresses after `anchor` (replacing an earlier one); `onChange` on every change.
 * @returns {{choice: () => ({mode: string, passphrase?: string}|null), focusPassphrase: () => void}}
 */
export function renderUnenrolled(anchor, unknown, onChange) {
  document.getElementById("unenrolled")?.remove();
  if (!unknown.length) return { choice: () => null, focusPassphrase: () => {} };
  const many = unknown.length > 1;
  const fs = el(
    "fieldset",
    { id: "unenrolled", class: "govuk-fieldset unenrolled" },
    el("legend", {
      class: "govuk-fieldset__legend govuk-fieldset__legend--s",
      text: many ? "How may these recipients without a SafeShare key open the share?" : "How may this recipient without a SafeShare key open the share?",
    }),
    el("div", {
      class: "govuk-hint",
      id: "unenrolled-hint",
      text: many
        ? `${unknown.join(", ")} have no SafeShare key yet. One choice applies to all of them (the gateway takes one way per share).`
        : `${unknown[0]} has no SafeShare key yet.`,
    }),
  );
  const radios = el("div", { class: "govuk-radios" });
  CHOICES.forEach((c, i) => {
    const id = `unenrolled-${i}`;
    radios.append(
      el(
        "div",
        { class: "govuk-radios__item" },
        el("input", { class: "govuk-radios__input", type: "radio", name: "unenrolled", value: c.value, id, "aria-describedby": "unenrolled-hint" }),
        el("label", { class: "govuk-label govuk-radios__label", for: id, text: c.label }),
      ),
    );
  });
  fs.append(radios);
  const input = el("input", {
    class: "govuk-input govuk-password-input__input",
    type: "password",
    id: "passphrase",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "passphrase-rule passphrase-problem",
    maxlength: 1024,
  });
  const toggle = el("button", { type: "button", id: "passphrase-show", class: "govuk-button govuk-button--secondary", "aria-pressed": "false", "aria-controls": "passphrase", text: "Show passphrase" });
  const suggest = el("button", { type: "button", id: "passphrase-suggest", class: "govuk-button govuk-button--secondary", text: "Suggest a strong passphrase" });
  const problem = el("p", { class: "govuk-error-message problem", id: "passphrase-problem", hidden: true });
  const box = el(
    "div",
    { class: "govuk-form-group passphrase", id: "passphrase-box", hidden: true },
    el("label", { class: "govuk-label govuk-label--s", for: "passphrase", text: "Passphrase" }),
    el("div", { class: "govuk-hint", id: "passphrase-rule", text: PASSPHRASE_RULE }),
    problem,
    input,
    el("div", { class: "govuk-button-group row-actions" }, toggle, suggest),
  );
  fs.append(box);

  const mode = () => fs.querySelector("input[name=unenrolled]:checked")?.value ?? null;
  const show = (on) => {
    input.type = on ? "text" : "password";
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Hide passphrase" : "Show passphrase";
  };
  const update = () => {
    box.hidden = mode() !== PASSPHRASE;
    const p = input.value ? passphraseProblem(input.value) : null;
    setError(problem, p ?? "");
    if (p) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    input.classList.toggle("govuk-input--error", !!p);
    box.classList.toggle("govuk-form-group--error", !!p);
    onChange();
  };
  toggle.addEventListener("click", () => show(input.type === "password"));
  suggest.addEventListener("click", () => {
    input.value = generatePassphrase();
    show(true); // a suggested passphrase is meant to be read out: show it
    update();
    input.focus();
  });
  fs.addEventListener("input", update);
  fs.addEventListener("change", update);
  anchor.after(fs);
  return {
    choice: () => {
      const m = mode();
      if (!m) return null;
      return m === PASSPHRASE ? { mode: m, passphrase: input.value } : { mode: m };
    },
    focusPassphrase: () => {
      if (mode() === PASSPHRASE) input.focus();
    },
  };
}
