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
  // A definition's own description speaks to the policy's authors ("Free text: not blank after trimming, at
  // most 4,000 characters"), not to practitioners: a hint is only what the property itself says.
  return { ...target, ...rest, description: rest.description, $refName: m ? m[1] : undefined };
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
    // The definition the value is (e.g. "ref"): a list of the same definition is offered what was entered here.
    ref: n.$refName,
    // An answer the panel already knows, offered rather than typed (x-offer; panel/suggestions.js).
    offer: typeof n["x-offer"] === "string" ? n["x-offer"] : undefined,
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
    return { ...base, kind: "list", itemRef: item.$refName };
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

// -- Questions shown only where they apply ---------------------------------------------------------------------

/**
 * Whether `value` matches `schema`, for the keywords the policies use in their `if` conditions (type, required,
 * properties, const, enum, contains, minItems, allOf, anyOf, not). Anything else counts as a match, so an unknown
 * keyword can only show a question, never hide one.
 */
export function matches(schema, value) {
  if (schema === true || schema === undefined) return true;
  if (schema === false) return false;
  const isObject = value !== null && typeof value === "object" && !Array.isArray(value);
  if (schema.type) {
    const ok = { object: isObject, array: Array.isArray(value), string: typeof value === "string", boolean: typeof value === "boolean" }[schema.type];
    if (ok === false) return false;
  }
  if ("const" in schema && JSON.stringify(value) !== JSON.stringify(schema.const)) return false;
  if (schema.enum && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) return false;
  if (schema.required && (!isObject || schema.required.some((k) => !(k in value)))) return false;
  if (schema.properties && isObject) {
    for (const [k, sub] of Object.entries(schema.properties)) if (k in value && !matches(sub, value[k])) return false;
  }
  if (schema.contains && (!Array.isArray(value) || !value.some((v) => matches(schema.contains, v)))) return false;
  if (typeof schema.minItems === "number" && Array.isArray(value) && value.length < schema.minItems) return false;
  if (schema.allOf && !schema.allOf.every((s) => matches(s, value))) return false;
  if (schema.anyOf && !schema.anyOf.some((s) => matches(s, value))) return false;
  if (schema.not && matches(schema.not, value)) return false;
  return true;
}

const isEmptySchema = (s) => s && typeof s === "object" && !Array.isArray(s) && Object.keys(s).every((k) => k.startsWith("x-"));

/**
 * The questions that do not apply to `draft`: every field a policy's `if`/`then` refuses outright (`"not": {}`)
 * under the draft as it stands — e.g. "which duty?" unless the basis is legal obligation, a child's views for an
 * adult. Concrete dotted paths ("subjects.1.adult_at_risk_tests"). The panel hides (and empties) them.
 * @param {object} policy
 * @param {object} draft
 * @returns {Set<string>}
 */
export function notApplicable(policy, draft) {
  const out = new Set();
  const join = (path, key) => (path ? `${path}.${key}` : String(key));
  function refused(then, value, path) {
    for (const [k, sub] of Object.entries(then?.properties ?? {})) {
      if (sub && typeof sub === "object" && sub.not !== undefined && isEmptySchema(sub.not)) out.add(join(path, k));
      else refused(sub, value?.[k], join(path, k));
    }
  }
  function walk(node, value, path, depth) {
    const n = deref(policy, node);
    if (!n || typeof n !== "object" || depth > 12) return;
    for (const rule of n.allOf ?? []) {
      if (rule.if !== undefined && rule.then && matches(rule.if, value)) refused(rule.then, value, path);
    }
    if (n.if !== undefined && n.then && matches(n.if, value)) refused(n.then, value, path);
    for (const [k, child] of Object.entries(n.properties ?? {})) walk(child, value?.[k], join(path, k), depth + 1);
    if (n.items && Array.isArray(value)) value.forEach((v, i) => walk(n.items, v, join(path, i), depth + 1));
  }
  walk(policy, draft ?? {}, "", 0);
  return out;
}

/**
 * What a practitioner would enter on screen to produce `doc` (the inverse of toJustification): the starting
 * point "from my last justification about this case" is put into the form through it.
 * @param {Field[]} tree
 * @param {object} doc
 */
export function toState(tree, doc, prefix = "", state = {}) {
  for (const f of tree) {
    const path = prefix ? `${prefix}.${f.key}` : f.key;
    const v = doc?.[f.key];
    if (v === undefined) continue;
    if (f.kind === "object") toState(f.children ?? [], v, path, state);
    else if (f.kind === "objects") {
      state[path] = v.length;
      v.forEach((row, i) => toState(f.children ?? [], row, `${path}.${i}`, state));
    } else if (f.kind === "list") state[path] = v.join(", ");
    else if (f.kind === "boolean") state[path] = String(v);
    else state[path] = v;
  }
  return state;
}

/** Every field of the tree whose value is the definition `ref` (e.g. the subjects' case references). */
export function fieldsOfRef(tree, ref) {
  const out = [];
  const walk = (fs) => {
    for (const f of fs) {
      if (f.ref === ref && f.kind !== "list") out.push(f.path);
      if (f.children) walk(f.children);
    }
  };
  walk(tree);
  return out;
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
