/**
 * Which questions apply (pure: no DOM, no extension APIs). The form asks a question only when it applies, and
 * knows that only from the policy's own JSON Schema — the extension holds no list of field names:
 *
 * - a property the schema always requires (its parent's `required`), or never requires, is always asked;
 * - a property that only an `if`/`then` requires (anywhere in the schema, `then.required` at any depth) is asked
 *   while one of those `if`s holds for the answers so far (e.g. the reasons for not seeking agreement only
 *   when agreement was not sought; Article 9 only when special category information is shared);
 * - a property an `if`/`then` forbids (`then.properties.<name>: {not: {}}`) is not asked while that `if` holds
 *   (e.g. the reason for not sharing, when sharing);
 * - `x-show-when` on a property (a JSON Schema, checked against the whole justification) overrides both: the
 *   property is asked exactly while the justification matches it.
 *
 * `matches` evaluates the subset of JSON Schema that conditions use (type, const, enum, required, properties,
 * items, contains, minItems/maxItems, minLength, allOf/anyOf/oneOf/not, local $ref); any other keyword is
 * taken as satisfied, so a condition the panel cannot read shows the question rather than hiding it. The
 * gateway's validator remains the judge of what is acceptable.
 */

function deref(policy, node) {
  if (!node || typeof node.$ref !== "string") return node ?? {};
  const m = /^#\/\$defs\/([^/]+)$/.exec(node.$ref);
  const { $ref, ...rest } = node;
  return { ...(m ? policy.$defs?.[m[1]] ?? {} : {}), ...rest };
}

const join = (...parts) => parts.filter((p) => p !== "").join(".");

function typeOk(type, v) {
  const one = (t) => {
    if (t === "object") return v !== null && typeof v === "object" && !Array.isArray(v);
    if (t === "array") return Array.isArray(v);
    if (t === "integer") return Number.isInteger(v);
    if (t === "null") return v === null;
    return typeof v === t;
  };
  return Array.isArray(type) ? type.some(one) : one(type);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** Whether `value` satisfies `schema` (the subset above). */
export function matches(policy, schema, value) {
  if (schema === true || schema === undefined) return true;
  if (schema === false) return false;
  const s = deref(policy, schema);
  if (s.type !== undefined && !typeOk(s.type, value)) return false;
  if ("const" in s && !same(s.const, value)) return false;
  if (Array.isArray(s.enum) && !s.enum.some((e) => same(e, value))) return false;
  const isObj = value !== null && typeof value === "object" && !Array.isArray(value);
  if (isObj) {
    for (const k of s.required ?? []) if (value[k] === undefined) return false;
    for (const [k, sub] of Object.entries(s.properties ?? {})) if (value[k] !== undefined && !matches(policy, sub, value[k])) return false;
  }
  if (Array.isArray(value)) {
    if (s.items && typeof s.items === "object" && !value.every((v) => matches(policy, s.items, v))) return false;
    if (s.contains && !value.some((v) => matches(policy, s.contains, v))) return false;
    if (typeof s.minItems === "number" && value.length < s.minItems) return false;
    if (typeof s.maxItems === "number" && value.length > s.maxItems) return false;
  }
  if (typeof value === "string" && typeof s.minLength === "number" && value.length < s.minLength) return false;
  if (Array.isArray(s.allOf) && !s.allOf.every((x) => matches(policy, x, value))) return false;
  if (Array.isArray(s.anyOf) && !s.anyOf.some((x) => matches(policy, x, value))) return false;
  if (Array.isArray(s.oneOf) && s.oneOf.filter((x) => matches(policy, x, value)).length !== 1) return false;
  if (s.not !== undefined && matches(policy, s.not, value)) return false;
  if (s.if !== undefined) {
    const branch = matches(policy, s.if, value) ? s.then : s.else;
    if (branch !== undefined && !matches(policy, branch, value)) return false;
  }
  return true;
}

/** What a `then` requires and forbids, as paths relative to the object the `if` is checked against. */
function consequences(policy, node, rel, out) {
  const n = deref(policy, node);
  for (const name of n.required ?? []) out.requires.push(join(rel, name));
  for (const [k, sub] of Object.entries(n.properties ?? {})) {
    const d = deref(policy, sub);
    if (d.not && typeof d.not === "object" && Object.keys(d.not).length === 0) out.forbids.push(join(rel, k));
    else consequences(policy, d, join(rel, k), out);
  }
  for (const part of n.allOf ?? []) consequences(policy, part, rel, out);
}

/**
 * The questions whose asking depends on other answers: path → {always, when: [{base, if}], unless: [{base, if}],
 * showWhen}. `base` is the path of the object the `if` is checked against ("" for the whole justification).
 * Paths inside lists (subjects.#…) are left out: their questions are always asked.
 * @param {object} policy
 * @returns {Map<string, {always: boolean, when: object[], unless: object[], showWhen?: object}>}
 */
export function conditionalFields(policy) {
  const info = new Map();
  const get = (path) => {
    if (!info.has(path)) info.set(path, { always: false, when: [], unless: [] });
    return info.get(path);
  };
  const seen = new Set();
  const walk = (node, path) => {
    const n = deref(policy, node);
    if (seen.has(n)) return;
    seen.add(n);
    for (const name of n.required ?? []) get(join(path, name)).always = true;
    const rules = [...(n.allOf ?? []), ...(n.if !== undefined ? [n] : [])];
    for (const r of rules) {
      if (r.if === undefined || !r.then) {
        if (r !== n) walk(r, path);
        continue;
      }
      const out = { requires: [], forbids: [] };
      consequences(policy, r.then, "", out);
      for (const p of out.requires) get(join(path, p)).when.push({ base: path, if: r.if });
      for (const p of out.forbids) get(join(path, p)).unless.push({ base: path, if: r.if });
    }
    for (const [k, child] of Object.entries(n.properties ?? {})) {
      const c = deref(policy, child);
      if (c["x-show-when"] !== undefined) get(join(path, k)).showWhen = c["x-show-when"];
      walk(child, join(path, k));
    }
  };
  walk(policy, "");
  for (const [path, v] of info) if (!v.showWhen && !v.unless.length && (v.always || !v.when.length)) info.delete(path);
  return info;
}

function at(doc, path) {
  let v = doc;
  for (const part of path ? path.split(".") : []) v = v && typeof v === "object" ? v[part] : undefined;
  return v;
}

/**
 * Whether the question at `path` applies, given the justification so far.
 * @param {object} policy
 * @param {{always: boolean, when: object[], unless: object[], showWhen?: object}} cond
 * @param {object} doc
 */
export function applies(policy, cond, doc) {
  if (cond.showWhen !== undefined) return matches(policy, cond.showWhen, doc);
  const holds = (c) => {
    const v = at(doc, c.base);
    return v !== undefined && matches(policy, c.if, v);
  };
  if (cond.unless.some(holds)) return false;
  if (cond.always || !cond.when.length) return true;
  return cond.when.some(holds);
}
