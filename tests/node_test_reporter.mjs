// A reporter for Node's test runner (`node --test --test-reporter=<this file>`): one JSON object per line
// for every finished test case, which tests/test_extension_js.py turns into one pytest subtest per case.
export default async function* jsonLines(source) {
  for await (const event of source) {
    const data = event.data;
    if (event.type === "test:stderr") {
      // What a file wrote to stderr (a file that does not even load says why here).
      yield JSON.stringify({ file: data.file ?? null, stderr: data.message }) + "\n";
      continue;
    }
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    // The runner wraps a failing case's own error (an assertion, a throw) as the `cause` of its own error.
    const error = data.details?.error;
    const cause = error?.cause ?? error;
    yield JSON.stringify({
      file: data.file ?? null,
      name: data.name,
      nesting: data.nesting,
      passed: event.type === "test:pass",
      skip: data.skip === undefined || data.skip === false ? null : String(data.skip === true ? "" : data.skip),
      todo: data.todo === undefined || data.todo === false ? null : String(data.todo === true ? "" : data.todo),
      error: cause ? String(cause.stack ?? cause.message ?? cause) : null,
    }) + "\n";
  }
}
