// Bundled into vendor/purify.js by build.mjs: the HTML sanitiser. The default export is DOMPurify bound to
// `window` when there is one (an extension page); call it with another window to get another instance.
export { default } from "dompurify";
