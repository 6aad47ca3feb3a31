/**
 * The golden-rules form as data (pure: no DOM, no extension APIs).
 *
 * `fieldTree(policy)` turns the policy the gateway serves (JSON Schema with x-golden-rule, x-question and
 * x-labels annotations) into a tree of fields to render; the extension holds no copy of the rules.
 * `toJustification(tree, state)` turns what the practitioner entered into the justification document, and
 * `placeProblems` puts each problem the gateway reports next to the field it concerns.
 */

/**
 * @typedef {object} Field
 * @property {string} key        property name
 * @property {string} path       dotted path from the document root ("#" stands for an array index)
 * @property {"object"|"choice"|"boolean"|"text"|"line"|"multi"|"list"|"objects"} kind
 * @property {string} title
 * @property {string} [question]
 * @property {string} [description]
 * @property {number|null} rule  golden-rule number, if any
 * @property {boolean} required  listed in its parent's `required`
 * @property {{value: string, label: string}[]} [options]
 * @property {Field[]} [children] for objects (and the item of `objects` lists)
 * @property {boolean} [multiline] for text
 * @property {number} [minItems]
 */

/** Resolve a local `$ref` ("#/$defs/name") against the policy, merging the referring node's annotations. */
function deref(policy, node) {
  if (!node || typeof node.$ref !== "string") return node ?? {};
  const m = /^#\/\$defs\/([^/]+)$/.exec(node.$ref);
  const target = m ? policy.$defs?.[m[1]] ?? {} : {};
  const { $ref, ...rest } = node;
  return { ...target, ...rest, $refName: m ? m[1] : undefined };
}

function options(node) {
  const labels = node["x-labels"] ?? {};
  return (node.enum ?? []).map((v) => ({ value: String(v), label: labels[String(v)] ?? String(v) }));
}

/**
 * @param {object} policy  the policy document (JSON Schema)
 * @param {object} node
 * @param {string} key
 * @param {string} path
 * @param {boolean} required
 * @param {number|null} inheritedRule
 * @returns {Field}
 */
function toField(policy, node, key, path, required, inheritedRule) {
  const n = deref(policy, node);
  const rule = typeof n["x-golden-rule"] === "number" ? n["x-golden-rule"] : inheritedRule;
  const base = {
    key,
    path,
    title: n.title ?? key,
    question: n["x-question"],
    description: n.description,
    rule,
    required,
    // Fields a policy safety net releases (x-safety-net): shown only while that safety net applies.
    safetyNet: typeof n["x-safety-net"] === "string" ? n["x-safety-net"] : undefined,
  };
  if (n.type === "object" || n.properties) {
    const req = new Set(n.required ?? []);
    const children = Object.entries(n.properties ?? {}).map(([k, child]) =>
      toField(policy, child, k, path ? `${path}.${k}` : k, req.has(k), rule),
    );
    return { ...base, kind: "object", children };
  }
  if (n.type === "array") {
    const item = deref(policy, n.items ?? {});
    if (item.type === "object" || item.properties) {
      const itemField = toField(policy, item, "#", `${path}.#`, true, rule);
      return { ...base, kind: "objects", children: itemField.children, minItems: n.minItems ?? 0, itemTitle: item.title ?? "Item" };
    }
    if (item.enum) return { ...base, kind: "multi", options: options(item) };
    return { ...base, kind: "list" };
  }
  if (n.type === "boolean") {
    const labels = n["x-labels"] ?? {};
    return {
      ...base,
      kind: "boolean",
      options: [
        { value: "true", label: labels.true ?? "Yes" },
        { value: "false", label: labels.false ?? "No" },
      ],
    };
  }
  if (n.enum) return { ...base, kind: "choice", options: options(n) };
  // Free text: the policy's long-text definition gets a text area, short values (references, age bands) a line.
  const multiline = n.$refName === "text" || (typeof n.maxLength === "number" && n.maxLength > 200);
  return { ...base, kind: multiline ? "text" : "line", multiline };
}

/**
 * The fields to render, in the policy's order. A property with a `const` (the policy id) is filled in by the
 * extension, not asked.
 * @param {object} policy
 * @returns {Field[]}
 */
export function fieldTree(policy) {
  const req = new Set(policy.required ?? []);
  return Object.entries(policy.properties ?? {})
    .filter(([, node]) => !("const" in node))
    .map(([k, node]) => toField(policy, node, k, k, req.has(k), null));
}

/** The policy's own identity (x-policy), for the justification's `policy` field and the panel heading. */
export function policyInfo(policy) {
  const p = policy["x-policy"] ?? {};
  return { id: p.id, version: p.version, title: p.title ?? policy.title, source: p.source };
}

/** The rule texts the policy carries (x-golden-rules), by number. */
export function ruleTexts(policy) {
  const out = new Map();
  for (const r of policy["x-golden-rules"] ?? []) out.set(r.number, r);
  return out;
}

const isEmptyObject = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0;

/**
 * The justification for what was entered. `state` holds raw values by concrete path ("subjects.0.ref" →
 * "CASE-1"; booleans as "true"/"false"; multi-choices as arrays; lists as comma-separated text) and the
 * number of rows of each `objects` list under its own path ("subjects" → 2).
 *
 * Empty answers are left out so the gateway reports them as missing; an empty section or list is kept only
 * where the policy always requires it (so problems point at the fields inside it).
 * @param {Field[]} tree
 * @param {Record<string, any>} state
 * @param {{policyId?: string}} [extra]
 */
export function toJustification(tree, state, extra = {}) {
  const doc = collectObject(tree, "", state) ?? {};
  if (extra.policyId) return { policy: extra.policyId, ...doc };
  return doc;
}

function concrete(prefix, key) {
  return prefix ? `${prefix}.${key}` : key;
}

function collectObject(fields, prefix, state) {
  const out = {};
  for (const f of fields) {
    const path = concrete(prefix, f.key);
    const v = collectField(f, path, state);
    if (v !== undefined) out[f.key] = v;
  }
  return out;
}

function collectField(f, path, state) {
  switch (f.kind) {
    case "object": {
      const obj = collectObject(f.children ?? [], path, state);
      return isEmptyObject(obj) && !f.required ? undefined : obj;
    }
    case "objects": {
      const n = Number(state[path] ?? 0);
      const rows = [];
      for (let i = 0; i < n; i++) rows.push(collectObject(f.children ?? [], `${path}.${i}`, state));
      return rows.length || f.required ? rows : undefined;
    }
    case "multi": {
      const arr = Array.isArray(state[path]) ? state[path].filter(Boolean) : [];
      return arr.length || f.required ? arr : undefined;
    }
    case "list": {
      const raw = state[path];
      const arr = String(raw ?? "")
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter(Boolean);
      return arr.length || f.required ? arr : undefined;
    }
    case "boolean": {
      const raw = state[path];
      if (raw === true || raw === "true") return true;
      if (raw === false || raw === "false") return false;
      return undefined;
    }
    default: {
      const raw = state[path];
      return raw === undefined || raw === null || raw === "" ? undefined : String(raw);
    }
  }
}

/**
 * Where each problem goes: the field it names if the form has it, else the nearest enclosing field that the
 * form has (e.g. "rules.5_safety_wellbeing.at_risk.0" → the at-risk list), else the general list.
 * @param {{field: string, rule: number|null, message: string, code: string}[]} problems
 * @param {(path: string) => boolean} hasField
 * @returns {{byField: Map<string, object[]>, general: object[]}}
 */
export function placeProblems(problems, hasField) {
  const byField = new Map();
  const general = [];
  for (const p of problems) {
    let parts = String(p.field ?? "").split(".").filter(Boolean);
    let placed = false;
    while (parts.length) {
      const path = parts.join(".");
      if (hasField(path)) {
        if (!byField.has(path)) byField.set(path, []);
        byField.get(path).push(p);
        placed = true;
        break;
      }
      parts = parts.slice(0, -1);
    }
    if (!placed) general.push(p);
  }
  return { byField, general };
}

/** Problems per golden rule (null: outside the rules). @returns {Map<number|null, number>} */
export function problemsPerRule(problems) {
  const counts = new Map();
  for (const p of problems) counts.set(p.rule ?? null, (counts.get(p.rule ?? null) ?? 0) + 1);
  return counts;
}

// -- Shared another way (golden rule 7 for phone calls, meetings, letters) ------------------------------------

/** How it was shared, in the order the panel offers them (the gateway's `disclosure.channel` values). */
export const CHANNELS = [
  { value: "phone", label: "By phone" },
  { value: "meeting", label: "At a meeting (for example a strategy discussion)" },
  { value: "in_person", label: "In person" },
  { value: "letter", label: "By letter" },
  { value: "other_system", label: "Through another system" },
  { value: "other", label: "Another way" },
];

/**
 * The `disclosure` for what was entered: raw values by path ("disclosure.channel", "disclosure.with.0.name", …,
 * "disclosure.at" as a datetime-local value in the practitioner's time zone). Empty answers are left out so the
 * gateway names them; the gateway's validator is the only judge of what is acceptable.
 * @param {Record<string, any>} state
 * @param {number} people  rows in the "with whom" list
 */
export function toDisclosure(state, people) {
  const out = {};
  const text = (k) => String(state[k] ?? "").trim();
  if (text("disclosure.channel")) out.channel = text("disclosure.channel");
  out.with = [];
  for (let i = 0; i < people; i++) {
    const row = {};
    for (const k of ["name", "role", "organisation"]) if (text(`disclosure.with.${i}.${k}`)) row[k] = text(`disclosure.with.${i}.${k}`);
    if (Object.keys(row).length) out.with.push(row);
  }
  if (text("disclosure.summary")) out.summary = String(state["disclosure.summary"]);
  const at = text("disclosure.at");
  if (at) out.at = localToRfc3339(at);
  return out;
}

/** "2026-12-03T09:30" (datetime-local, the browser's zone) → RFC 3339 in UTC; anything unparseable is kept as typed. */
export function localToRfc3339(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

/** The value for a datetime-local input showing `date` in the browser's zone, to the minute. */
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
