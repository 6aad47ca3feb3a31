/**
 * The partnership's agreements in the share panel (golden rule 6): under the policy's "agreements" field, the
 * agreements in force that cover this draft's purpose, data categories and subjects — each with its title, a
 * link to the document and, when a recipient's organisation has not signed it, a plain explanation. Ticking
 * one fills the field (the justification's top-level `agreements` list), which the gateway checks on sharing.
 *
 * Self-contained: it reads the rendered form (data-path attributes) and asks the service worker for the
 * offers, so panel.js only calls `setupAgreements` once the form and the recipients are on screen.
 */

const KIND_WORDS = { protocol: "Overarching protocol", data_exchange: "Data exchange agreement", other: "Agreement" };

function node(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") n.textContent = v;
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) n.append(c);
  return n;
}

/** What the offers depend on, read from the rendered form. */
export function draftFacts(fields) {
  const value = (path) => fields.querySelector(`[data-path="${path}"]:is(select, input[type=text])`)?.value ?? "";
  const checked = (path) => [...fields.querySelectorAll(`input[data-path="${path}"]:checked`)].map((i) => i.value);
  const roles = [];
  for (const n of fields.querySelectorAll("[data-path]")) {
    if (!/^subjects\.\d+\.role$/.test(n.dataset.path)) continue;
    const v = n.type === "radio" ? (n.checked ? n.value : "") : n.value;
    if (v && !roles.includes(v)) roles.push(v);
  }
  const purpose = value("purpose.code") || checked("purpose.code")[0] || "";
  return { purpose, categories: checked("data_categories"), roles };
}

/** The IDs typed into (or ticked for) the agreements field. */
function namedIds(input) {
  return input.value
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * @param {{ask: (type: string, payload?: object) => Promise<any>, fields: HTMLElement, recipients: () => string[]}} opts
 */
export function setupAgreements({ ask, fields, recipients }) {
  const box = fields.querySelector('[data-field="agreements"]');
  const input = box?.querySelector('input[data-path="agreements"]');
  if (!box || !input) return { refresh: async () => {} };
  const section = node("div", { class: "agreements-offered", id: "agreements-offered", "aria-live": "polite" });
  input.insertAdjacentElement("afterend", section);

  let lastKey = null;
  let seq = 0;
  let timer = null;

  function render(answer) {
    section.replaceChildren();
    const offers = answer.agreements ?? [];
    if (!offers.length) {
      section.append(
        node("p", {
          class: "hint",
          text:
            "No partnership agreement in force covers this purpose, these kinds of information and these subjects. " +
            "If none applies, say why under \u201cWhy no partnership agreement applies\u201d.",
        }),
      );
      return;
    }
    const named = new Set(namedIds(input));
    const fs = node("fieldset", { class: "choices" }, node("legend", { text: "Agreements that cover this share" }));
    offers.forEach((a, i) => {
      const id = `agreement-offer-${i}`;
      const explanationId = `${id}-why`;
      const cb = node("input", { type: "checkbox", id, value: a.id, "aria-describedby": explanationId, checked: named.has(a.id) });
      cb.dataset.agreement = a.id;
      cb.addEventListener("change", () => {
        const ids = namedIds(input).filter((x) => x !== a.id);
        if (cb.checked) ids.push(a.id);
        input.value = ids.join(", ");
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
      const label = node("label", { for: id }, cb, ` ${a.title} (${KIND_WORDS[a.kind] ?? "Agreement"}, version ${a.version})`);
      const link = node("a", {
        href: a.document.href,
        target: "_blank",
        rel: "noopener noreferrer",
        class: "agreement-document",
        text: `Read ${a.title} (opens in a new tab)`,
      });
      const why = node("p", {
        id: explanationId,
        class: a.covers_all_recipients ? "hint" : "hint warning",
        text: a.explanation,
      });
      fs.append(node("div", { class: "agreement-offer", "data-agreement-offer": a.id }, label, why, link));
    });
    section.append(fs);
  }

  async function refresh() {
    const facts = draftFacts(fields);
    const params = { recipients: recipients(), ...facts };
    const key = JSON.stringify(params);
    if (key === lastKey) return;
    lastKey = key;
    const mine = ++seq;
    try {
      const answer = await ask("agreements", params);
      if (mine === seq) render(answer);
    } catch (e) {
      if (mine !== seq) return;
      lastKey = null;
      section.replaceChildren(node("p", { class: "hint", text: `The partnership's agreements could not be loaded (${e.message}).` }));
    }
  }

  const later = (ev) => {
    if (ev.target === input || ev.target?.dataset?.agreement) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  };
  fields.addEventListener("input", later);
  fields.addEventListener("change", later);
  return { refresh };
}
