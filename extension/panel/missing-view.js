/**
 * Attachments the webmail would not hand over (Outlook on the web fetches them through its own service, so its
 * cards carry no link SafeShare can read): for each, the panel asks for the same file — chosen or dropped here,
 * checked by the service worker against the card's name and size — or for the practitioner's explicit choice
 * to share without it. Nothing is dropped silently: Share waits until each one is resolved.
 */
import { bytesToBase64 } from "../lib/recipient.js";
import { setError } from "../lib/govuk.js";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

/**
 * @param {{box: HTMLElement, missing: {name: string, sizeText: string}[], ask: Function, webmail: string,
 *          onDraft: (draft: object) => void, onChange: () => void}} opts
 * @returns {{unresolved: () => string[], leaveOut: () => string[]}}
 */
export function renderMissing({ box, missing, ask, webmail, onDraft, onChange }) {
  box.replaceChildren();
  box.hidden = !missing.length;
  const where = { outlook: "Outlook", gmail: "Gmail", roundcube: "Roundcube" }[webmail] ?? "the webmail";
  missing.forEach((card, i) => {
    const id = `missing-${i}`;
    const size = card.sizeText ? ` (${card.sizeText})` : "";
    const problem = el("p", { class: "govuk-error-message problem", id: `${id}-problem`, hidden: true });
    const picker = el("input", { class: "govuk-file-upload", type: "file", id: `${id}-file`, "aria-describedby": `${id}-text ${id}-problem` });
    const without = el("input", { class: "govuk-checkboxes__input", type: "checkbox", id: `${id}-without`, dataset: { leaveOut: card.name } });
    const upload = el("div", { class: "govuk-form-group" }, el("label", { for: picker.id, class: "govuk-label govuk-label--s", text: `Choose ${card.name}` }), problem, picker);
    const section = el(
      "div",
      { class: "missing", role: "group", "aria-labelledby": `${id}-h`, dataset: { card: card.name } },
      el("h3", { id: `${id}-h`, class: "govuk-heading-s", text: `${card.name}${size} is not included yet` }),
      el("p", {
        id: `${id}-text`,
        class: "govuk-body",
        text: `SafeShare could not read this attachment from ${where}. Add the same file from your computer (choose it, or drop it here), or share without it: it will then be removed from your email and not shared.`,
      }),
      upload,
      el(
        "div",
        { class: "govuk-checkboxes govuk-checkboxes--small" },
        el("div", { class: "govuk-checkboxes__item" }, without, el("label", { class: "govuk-label govuk-checkboxes__label", for: without.id, text: `Share without ${card.name}` })),
      ),
    );
    const add = async (file) => {
      problem.hidden = true;
      upload.classList.remove("govuk-form-group--error");
      try {
        const data = bytesToBase64(new Uint8Array(await file.arrayBuffer()));
        const { draft } = await ask("add-attachment", { card: card.name, name: file.name, mime: file.type, data });
        onDraft(draft);
      } catch (e) {
        setError(problem, e.message);
        picker.setAttribute("aria-invalid", "true");
        picker.classList.add("govuk-file-upload--error");
        upload.classList.add("govuk-form-group--error");
        picker.value = "";
      }
    };
    picker.addEventListener("change", () => picker.files?.[0] && add(picker.files[0]));
    section.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      section.classList.add("dragging");
    });
    section.addEventListener("dragleave", () => section.classList.remove("dragging"));
    section.addEventListener("drop", (ev) => {
      ev.preventDefault();
      section.classList.remove("dragging");
      const file = ev.dataTransfer?.files?.[0];
      if (file) add(file);
    });
    without.addEventListener("change", () => {
      picker.disabled = without.checked;
      onChange();
    });
    box.append(section);
  });
  const leaveOut = () => [...box.querySelectorAll("input[data-leave-out]:checked")].map((i) => i.dataset.leaveOut);
  return {
    leaveOut,
    unresolved: () => missing.map((m) => m.name).filter((n) => !leaveOut().includes(n)),
  };
}
