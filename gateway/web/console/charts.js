/**
 * Oversight charts as inline SVG made here: no chart library, nothing fetched, so they work offline and under
 * the console's strict Content-Security-Policy (no inline styles: colours are classes in console.css). Each
 * chart comes with the same figures as a table (the chart is hidden from screen readers; the table is what
 * they read) and every series is also told apart by pattern-free order and a legend, not colour alone.
 */

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** A "nice" top for the value axis (1, 2, 5 × 10^n) and its tick step. */
export function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 1 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  const whole = Math.max(1, Math.round(step));
  return { top: Math.ceil(max / whole) * whole, step: whole };
}

/** "2026-11" → "Nov 2026" */
export function monthLabel(m) {
  const names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const [y, mm] = String(m).split("-");
  const i = Number(mm) - 1;
  return names[i] ? `${names[i]} ${y}` : String(m);
}

/**
 * A grouped (or stacked) bar chart: `categories` along the bottom, one bar (or segment) per series.
 * @param {{title: string, categories: string[], series: {name: string, values: number[]}[], stacked?: boolean}} spec
 */
export function barChart({ title, categories, series, stacked = false }) {
  const width = 640;
  const height = 260;
  const left = 44;
  const bottom = 40;
  const top = 12;
  const plotW = width - left - 10;
  const plotH = height - top - bottom;
  const totals = categories.map((_, i) => series.reduce((a, s) => a + (s.values[i] ?? 0), 0));
  const max = stacked ? Math.max(0, ...totals) : Math.max(0, ...series.flatMap((s) => s.values));
  const { top: axisTop, step } = niceScale(max);
  const y = (v) => top + plotH - (v / axisTop) * plotH;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", "aria-hidden": "true", focusable: "false" });
  for (let v = 0; v <= axisTop; v += step) {
    root.append(svg("line", { x1: left, x2: width - 10, y1: y(v), y2: y(v), class: "chart__grid" }));
    root.append(svg("text", { x: left - 6, y: y(v) + 4, class: "chart__tick", "text-anchor": "end" }, String(v)));
  }
  const band = plotW / Math.max(1, categories.length);
  const groupW = band * 0.7;
  categories.forEach((cat, i) => {
    const x0 = left + band * i + (band - groupW) / 2;
    let base = 0;
    series.forEach((s, j) => {
      const v = s.values[i] ?? 0;
      if (stacked) {
        if (v > 0) root.append(svg("rect", { x: x0, width: groupW, y: y(base + v), height: y(base) - y(base + v), class: `chart__bar chart__bar--${j % 8}` }));
        base += v;
      } else {
        const w = groupW / series.length;
        if (v > 0) root.append(svg("rect", { x: x0 + w * j, width: Math.max(1, w - 2), y: y(v), height: y(0) - y(v), class: `chart__bar chart__bar--${j % 8}` }));
      }
    });
    root.append(svg("text", { x: x0 + groupW / 2, y: height - bottom + 16, class: "chart__tick", "text-anchor": "middle" }, cat));
  });
  root.append(svg("line", { x1: left, x2: width - 10, y1: y(0), y2: y(0), class: "chart__axis" }));
  const legend = el("ul", { class: "chart__legend", "aria-hidden": "true" });
  series.forEach((s, j) => legend.append(el("li", {}, el("span", { class: `chart__key chart__bar--${j % 8}` }), s.name)));
  return el("div", { class: "chart__figure" }, root, legend);
}

/** The same figures as a table: categories as rows, series as columns (and a total when stacked). */
export function dataTable({ title, categories, series, stacked = false, categoryHeading = "Month" }) {
  const head = el("tr", { class: "govuk-table__row" }, el("th", { scope: "col", class: "govuk-table__header", text: categoryHeading }));
  for (const s of series) head.append(el("th", { scope: "col", class: "govuk-table__header govuk-table__header--numeric", text: s.name }));
  if (stacked && series.length > 1) head.append(el("th", { scope: "col", class: "govuk-table__header govuk-table__header--numeric", text: "Total" }));
  const body = el("tbody", { class: "govuk-table__body" });
  categories.forEach((cat, i) => {
    const row = el("tr", { class: "govuk-table__row" }, el("th", { scope: "row", class: "govuk-table__header", text: cat }));
    let total = 0;
    for (const s of series) {
      total += s.values[i] ?? 0;
      row.append(el("td", { class: "govuk-table__cell govuk-table__cell--numeric", text: String(s.values[i] ?? 0) }));
    }
    if (stacked && series.length > 1) row.append(el("td", { class: "govuk-table__cell govuk-table__cell--numeric", text: String(total) }));
    body.append(row);
  });
  return el(
    "table",
    { class: "govuk-table chart__table" },
    el("caption", { class: "govuk-table__caption govuk-table__caption--s", text: `${title}: the figures` }),
    el("thead", { class: "govuk-table__head" }, head),
    body,
  );
}

/** One chart section: heading, chart, the figures as a table. */
export function chartSection(id, spec) {
  return el(
    "section",
    { class: "chart-section", id, "aria-labelledby": `${id}-h` },
    el("h2", { class: "govuk-heading-m", id: `${id}-h`, text: spec.title }),
    spec.description ? el("p", { class: "govuk-body", text: spec.description }) : null,
    barChart(spec),
    dataTable(spec),
  );
}

/** Keys of `dim` across all months, most used first. */
function keysOf(months, dim) {
  const totals = new Map();
  for (const m of months) for (const [k, n] of Object.entries(m[dim] ?? {})) totals.set(k, (totals.get(k) ?? 0) + n);
  return [...totals.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k]) => k);
}

/**
 * The oversight charts' specifications from `GET /api/v1/ledger/stats`, every code in the policies' words.
 * @param {object} stats
 * @param {{purpose: (c: string) => string, article_6: (c: string) => string}} words
 */
export function chartSpecs(stats, words) {
  const months = stats?.months ?? [];
  const categories = months.map((m) => monthLabel(m.month));
  const pick = (key) => months.map((m) => m[key] ?? 0);
  const specs = [
    {
      id: "chart-decisions",
      title: "Shares and decisions not to share, by month",
      categories,
      series: [
        { name: "Shared through SafeShare", values: pick("shares") },
        { name: "Decided not to share", values: pick("decisions_not_to_share") },
        { name: "Not shared despite risk of harm", values: pick("not_shared_despite_risk") },
        { name: "Shared another way", values: pick("disclosures_elsewhere") },
      ],
    },
  ];
  const purposes = keysOf(months, "purpose");
  specs.push({
    id: "chart-purpose",
    title: "Decisions by purpose, by month",
    description: "Every recorded decision (to share or not), by its purpose.",
    categories,
    stacked: true,
    series: purposes.map((p) => ({ name: words.purpose(p), values: months.map((m) => m.purpose?.[p] ?? 0) })),
  });
  const bases = keysOf(months, "article_6");
  specs.push({
    id: "chart-basis",
    title: "Lawful bases (UK GDPR Article 6), by month",
    categories,
    stacked: true,
    series: bases.map((b) => ({ name: words.article_6(b), values: months.map((m) => m.article_6?.[b] ?? 0) })),
  });
  specs.push({
    id: "chart-revoked",
    title: "Revocations and emergency shares not completed, by month",
    description: "Shares later revoked, and emergency shares never downloaded, counted in the month they were shared.",
    categories,
    series: [
      { name: "Shares later revoked", values: pick("shares_later_revoked") },
      { name: "Emergency shares never downloaded", values: pick("emergency_shares_not_completed") },
    ],
  });
  return specs;
}

function csvCell(v) {
  let s = String(v ?? "");
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`; // a spreadsheet would run it as a formula (as the ledger export does)
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Every month's figures as CSV (one row per month; one column per series of every chart), then one column per
 * organisation that decided (the `org` figures): headed "Decisions by organisation: Name (ID)", the ID kept as
 * the stable key beside the name, or the ID alone when no name is known (`orgNames`, ID → name, from
 * GET /api/v1/ledger/people: only the auditor's own organisation is named for an organisation's auditor).
 */
export function statsCsv(stats, words, orgNames = {}) {
  const specs = chartSpecs(stats, words);
  const months = stats?.months ?? [];
  const header = ["month"];
  const columns = [];
  for (const spec of specs) {
    for (const s of spec.series) {
      header.push(`${spec.title}: ${s.name}`);
      columns.push(s.values);
    }
  }
  for (const org of keysOf(months, "org")) {
    const name = org === "none" ? "no organisation recorded" : orgNames[org] && orgNames[org] !== org ? `${orgNames[org]} (${org})` : org;
    header.push(`Decisions by organisation: ${name}`);
    columns.push(months.map((m) => m.org?.[org] ?? 0));
  }
  const lines = [header.map(csvCell).join(",")];
  months.forEach((m, i) => lines.push([m.month, ...columns.map((c) => c[i] ?? 0)].map(csvCell).join(",")));
  return lines.join("\r\n") + "\r\n";
}
