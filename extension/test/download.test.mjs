// Received files are offered as downloads only: octet-stream blobs with a download name.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DOWNLOAD_TYPE, downloadName, downloadUrl } from "../lib/download.js";

test("download names keep the original name but no folders or control characters", () => {
  assert.equal(downloadName("report.html"), "report.html");
  assert.equal(downloadName("../../etc/passwd"), ".._.._etc_passwd");
  assert.equal(downloadName("a\u0000b\nc.svg"), "abc.svg");
  assert.equal(downloadName(".."), "attachment");
  assert.equal(downloadName("", "x.bin"), "x.bin");
});

test("the blob is octet-stream whatever the sender said", async () => {
  const url = downloadUrl(new TextEncoder().encode("<svg onload=alert(1)>"));
  assert.match(url, /^blob:/);
  assert.equal(DOWNLOAD_TYPE, "application/octet-stream");
  const blob = await (await fetch(url)).blob();
  assert.equal(blob.type, "application/octet-stream");
  URL.revokeObjectURL(url);
});
