/**
 * Builds ../console/vendor/ from the pinned govuk-frontend: its Sass compiled with system fonts (the GDS
 * Transport font and the crown are for GOV.UK only), and its browser JavaScript as shipped. Run
 * `npm ci && npm run build` here, then `python -m gateway.web` from the repository root (SRI hashes).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as sass from "sass";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "console", "vendor");
const pkg = join(here, "node_modules", "govuk-frontend");
mkdirSync(out, { recursive: true });

const css = sass.compile(join(here, "console.scss"), {
  style: "compressed",
  importers: [new sass.NodePackageImporter()],
  quietDeps: true,
  silenceDeprecations: ["import"],
}).css;
const urls = [...css.matchAll(/url\(([^)]*)\)/g)].map((m) => m[1]);
const allowed = urls.filter((u) => !u.includes("govuk-crest"));
if (allowed.length) throw new Error(`unexpected url() in the CSS: ${allowed.join(", ")}`);
if (/GDS Transport/.test(css)) throw new Error("the GDS Transport font is still named in the CSS");
// The crest (footer copyright logo) is never shown; its url() is removed so that nothing is fetched.
writeFileSync(join(out, "govuk-frontend.min.css"), css.replace(/url\([^)]*govuk-crest[^)]*\)/g, "none") + "\n");
writeFileSync(
  join(out, "govuk-frontend.min.js"),
  readFileSync(join(pkg, "dist", "govuk", "govuk-frontend.min.js"), "utf8").replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n"),
);
const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version;
writeFileSync(
  join(out, "LICENSES.txt"),
  `govuk-frontend ${version} (https://github.com/alphagov/govuk-frontend), compiled by gateway/web/_console_src.\n\n` +
    `Licence: ${JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).license} (the package ships no licence file).\n` +
    "The MIT License (MIT)\n\nCopyright (c) 2018 Crown Copyright (Government Digital Service)\n\n" +
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated " +
    "documentation files (the \"Software\"), to deal in the Software without restriction, including without " +
    "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the " +
    "Software, and to permit persons to whom the Software is furnished to do so, subject to the following " +
    "conditions:\n\nThe above copyright notice and this permission notice shall be included in all copies or " +
    "substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, " +
    "EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR " +
    "PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, " +
    "DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN " +
    "CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.\n",
);
console.log(`vendor/ written from govuk-frontend ${version}`);
