// ESLint (flat config) for the extension's own JavaScript: `npm run lint` here, and from the repository's
// check command (scripts/check) in CI and pre-commit. The bundles in vendor/ are built from npm packages
// and are not ours to lint.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "vendor/"] },
  js.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `const { omitted, ...rest } = obj` is how a key is dropped; an unused name anywhere else is a finding.
      "no-unused-vars": ["error", { ignoreRestSiblings: true }],
      eqeqeq: ["error", "smart"],
      "no-var": "error",
      "prefer-const": "error",
    },
  },
  {
    // Extension pages, the service worker and the libraries they import: ES modules in the browser.
    files: ["**/*.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.browser, ...globals.webextensions } },
  },
  {
    // Content scripts cannot be modules: classic scripts sharing globalThis.SafeShareAdapterKit/Adapters.
    files: ["adapters/*.js", "content/*.js"],
    languageOptions: { sourceType: "script" },
  },
  {
    // Layers: the service worker and lib/ never import the pages' code (panel/, options/, recipient/); what
    // both need lives in lib/ (ARCHITECTURE.md).
    files: ["background.js", "lib/*.js"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "(^|/)(panel|options|recipient)/", message: "Move what the worker or lib/ needs into lib/." }] }],
    },
  },
  {
    // The build script and the `node --test` suite run in Node.
    files: ["build.mjs", "test/**/*.mjs"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
