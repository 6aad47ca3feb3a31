import assert from "node:assert/strict";
import { test } from "node:test";

import { gatewayOriginOf, hostPermissionPattern, originOf } from "../lib/origins.js";

test("webmail origins accept http and https addresses", () => {
  assert.equal(originOf("https://webmail.council.example/roundcube/"), "https://webmail.council.example");
  assert.equal(originOf("http://127.0.0.1:8081"), "http://127.0.0.1:8081");
  assert.equal(originOf("ftp://x.example"), null);
  assert.equal(originOf("not a url"), null);
});

test("the gateway, which receives the token, must be https unless it is on this computer", () => {
  assert.equal(gatewayOriginOf("https://gateway.council.example/"), "https://gateway.council.example");
  assert.equal(gatewayOriginOf("http://127.0.0.1:8080/api"), "http://127.0.0.1:8080");
  assert.equal(gatewayOriginOf("http://localhost:8080"), "http://localhost:8080");
  assert.equal(gatewayOriginOf("http://[::1]:8080"), "http://[::1]:8080");
  assert.equal(gatewayOriginOf("http://gateway.council.example"), null);
  assert.equal(gatewayOriginOf("javascript:alert(1)"), null);
});

test("host permissions are asked for without the port, as the manifest's loopback patterns are written", () => {
  assert.equal(hostPermissionPattern("http://127.0.0.1:8080"), "http://127.0.0.1/*");
  assert.equal(hostPermissionPattern("https://webmail.council.example"), "https://webmail.council.example/*");
  assert.equal(hostPermissionPattern("https://webmail.council.example:8443"), "https://webmail.council.example/*");
  assert.equal(hostPermissionPattern("http://[::1]:8080"), "http://[::1]/*");
});
