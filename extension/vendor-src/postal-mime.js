// Bundled into vendor/postal-mime.js by build.mjs: the MIME message parser.
export { default, addressParser, decodeWords } from "postal-mime";
