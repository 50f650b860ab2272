// The pure modules (web/logic/) run in node as they are: importing one must not touch a browser
// global, their source must not name one, they import only each other, and each has its own
// test file here. node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const DIR = fileURLToPath(new URL("../../web/logic/", import.meta.url));
const MODULES = readdirSync(DIR).filter((f) => f.endsWith(".js")).sort();
// What a pure module must not touch. Node has no `document`; it does have `fetch` (and may have
// `WebSocket` or `navigator`), so each is replaced by a getter that throws while importing.
const BROWSER = [
  "document",
  "window",
  "WebSocket",
  "fetch",
  "Plotly",
  "localStorage",
  "sessionStorage",
  "location",
  "navigator",
  "requestAnimationFrame",
];
// Not trapped (node's own machinery may use them), but a pure module has no business naming them.
const ALSO_BANNED = ["history", "performance", "setTimeout", "setInterval", "getComputedStyle", "matchMedia"];

async function importTrapped(url) {
  const saved = BROWSER.map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]);
  const touched = [];
  for (const name of BROWSER) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        touched.push(name);
        throw new ReferenceError(`${name} touched by a pure module`);
      },
    });
  }
  try {
    return { module: await import(url), touched };
  } catch (err) {
    return { error: err, touched };
  } finally {
    for (const [name, d] of saved) {
      if (d) Object.defineProperty(globalThis, name, d);
      else delete globalThis[name];
    }
  }
}

function code(path) {
  // Comments say what the browser does; only the code counts.
  return readFileSync(path, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

test("the pure modules are there", () => {
  for (const m of ["book.js", "series.js", "session.js", "connection.js", "news.js", "rate.js", "format.js"]) {
    assert.ok(MODULES.includes(m), `${m} missing from web/logic/`);
  }
});

test("the trap works: a module touching `document` at import fails", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ticker-purity-"));
  try {
    const bad = join(dir, "bad.js");
    writeFileSync(bad, "export const title = document.title;\n");
    const { error, touched } = await importTrapped(pathToFileURL(bad).href);
    assert.ok(error instanceof ReferenceError);
    assert.deepEqual(touched, ["document"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const file of MODULES) {
  test(`${file}: imports in node without touching a browser global`, async () => {
    const url = pathToFileURL(join(DIR, file)).href + "?purity";
    const { error, module, touched } = await importTrapped(url);
    assert.equal(error, undefined, String(error));
    assert.deepEqual(touched, []);
    assert.ok(Object.keys(module).length > 0, "exports something");
  });

  test(`${file}: names no browser global, imports only pure modules`, () => {
    const src = code(join(DIR, file));
    // Quoted text is data (a storage key "window" is no reference to the global).
    const names = src.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, '""');
    for (const name of [...BROWSER, ...ALSO_BANNED]) {
      const use = new RegExp(`(?<![.\\w$])${name}(?![\\w$])`);
      assert.doesNotMatch(names, use, `${file} names ${name}`);
    }
    for (const [, spec] of src.matchAll(/\bfrom\s+["']([^"']+)["']/g)) {
      assert.match(spec, /^\.\/[\w-]+\.js$/, `${file} imports ${spec} (not a module of web/logic/)`);
    }
    assert.doesNotMatch(src, /\bimport\s*\(/, `${file} imports dynamically`);
  });

  test(`${file}: has its own test file`, () => {
    const name = file.replace(/\.js$/, ".test.mjs");
    assert.ok(existsSync(fileURLToPath(new URL(name, import.meta.url))), `tests/js/${name} missing`);
  });
}
