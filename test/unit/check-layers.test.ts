/**
 * scripts/check-layers.ts: the layer rule over the import graph. A fixture tree with its own
 * ARCHITECTURE.md table must fail for each kind of violating import (upward, type-only, dynamic,
 * re-export, a plugin reaching into the runtime or another plugin) and pass once they are gone;
 * quoted and commented imports are not imports. The real tree must pass (CI runs it too).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { importSpecifiers } from "../../scripts/check-layers.ts";

const SCRIPT = resolve(import.meta.dir, "../../scripts/check-layers.ts");
const REPO = resolve(import.meta.dir, "../..");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const TABLE = `# fixture

## Layers (from the bottom up)

| layer | folder | job | knows nothing of |
|---|---|---|---|
| public API | \`runtime/api/\` | types | the runtime |
| FFI | \`runtime/ffi/\` | libc | FUSE |
| dispatcher | \`runtime/dispatch/\` | ops | |
| plugin host | \`runtime/host/\` | generations | |
| entry | \`runtime/host/entry.ts\` | a file of its own, above the rest of its folder | |

## Next
`;

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "furing-layers-"));
  dirs.push(root);
  writeFileSync(join(root, "ARCHITECTURE.md"), TABLE);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

function check(root: string): { code: number; out: string } {
  const r = Bun.spawnSync([process.execPath, SCRIPT, "--root", root], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

const CLEAN = {
  "runtime/api/types.ts": `export type X = number;\n`,
  "runtime/ffi/libc.ts": `import type { X } from "../api/types.ts";\nexport const x: X = 1;\n`,
  "runtime/dispatch/dispatcher.ts": `import { x } from "../ffi/libc.ts";\nimport "node:fs";\nexport const y = x;\n`,
  "runtime/host/host.ts": `import { y } from "../dispatch/dispatcher.ts";\nexport { y };\n`,
  "runtime/host/entry.ts": `export * from "./host.ts";\n`,
  "plugins/p/index.ts": `import { Errno } from "furing";\nimport * as sys from "furing/sys";\nimport { a } from "./a.ts";\nimport { readFileSync } from "node:fs";\nimport { Database } from "bun:sqlite";\n`,
  "plugins/p/a.ts": `export const a = 1;\n`,
  "examples/e/e.test.ts": `import { withMount } from "furing/testing";\n`,
};

describe("check-layers", () => {
  test("a tree that keeps the rule passes", () => {
    const r = check(tree(CLEAN));
    expect(r.out).toContain("every import keeps the layer rule");
    expect(r.code).toBe(0);
  });

  test("each violating import is reported, and the check fails", () => {
    const r = check(
      tree({
        ...CLEAN,
        // upward: the dispatcher reaching into the plugin host (the sourcemap case)
        "runtime/dispatch/dispatcher.ts": `import { x } from "../ffi/libc.ts";\nimport { fold } from "../host/host.ts";\n`,
        // type-only and re-export imports count
        "runtime/ffi/libc.ts": `import type { D } from "../dispatch/dispatcher.ts";\nexport { y } from "../dispatch/dispatcher.ts";\n`,
        // the public API knows nothing of the runtime; a dynamic import is an import
        "runtime/api/types.ts": `export async function f() { return import("../ffi/libc.ts"); }\nlet v: import("../host/host.ts").T;\n`,
        // a folder's own file may not import the row above it that is one file of that folder
        "runtime/host/host.ts": `import "./entry.ts";\n`,
        // a plugin reaching into the runtime, another plugin, or furing/testing outside a test
        "plugins/p/index.ts": `import { Dispatcher } from "../../runtime/dispatch/dispatcher.ts";\nimport { q } from "../q/index.ts";\nimport { withMount } from "furing/testing";\n`,
      }),
    );
    expect(r.code).toBe(1);
    const lines = r.out.split("\n");
    const want = [
      "runtime/dispatch/dispatcher.ts: imports ../host/host.ts (layer dispatcher may not import layer plugin host)",
      "runtime/ffi/libc.ts: imports ../dispatch/dispatcher.ts (layer FFI may not import layer dispatcher)",
      "runtime/api/types.ts: imports ../ffi/libc.ts (layer public API may not import layer FFI)",
      "runtime/api/types.ts: imports ../host/host.ts (layer public API may not import layer plugin host)",
      "runtime/host/host.ts: imports ./entry.ts (layer plugin host may not import layer entry)",
    ];
    for (const w of want) expect(lines).toContain(w);
    expect(lines.filter((l) => l.startsWith("runtime/ffi/libc.ts: imports ../dispatch/dispatcher.ts")).length).toBe(2);
    expect(r.out).toContain("plugins/p/index.ts: imports ../../runtime/dispatch/dispatcher.ts (a plugin imports only");
    expect(r.out).toContain("plugins/p/index.ts: imports ../q/index.ts (a plugin imports only");
    expect(r.out).toContain("plugins/p/index.ts: imports furing/testing (a plugin imports only furing and furing/sys of furing's modules");
    expect(r.out).toContain("check-layers: 9 imports against the layer rule");
  });

  test("a runtime folder missing from the table is reported", () => {
    const r = check(tree({ ...CLEAN, "runtime/stray/x.ts": `export const s = 1;\n` }));
    expect(r.code).toBe(1);
    expect(r.out).toContain("runtime/stray/x.ts: is in no layer");
  });

  test("a table without runtime folders is an error, not a pass", () => {
    const root = tree(CLEAN);
    writeFileSync(join(root, "ARCHITECTURE.md"), "# nothing\n\n## Layers\n\nnone\n");
    const r = check(root);
    expect(r.code).toBe(1);
    expect(r.out).toContain("names no runtime/ folder");
  });

  test("imports in strings, templates, comments and regexes are not imports", () => {
    const src = [
      `// import a from "./a.ts"`,
      `/* export * from "./b.ts" */`,
      'const t = `import c from "./c.ts"; ${"x"}`;',
      `const s = 'import d from "./d.ts"';`,
      `const r = /"|'/; const o = { from: 1 }; Array.from("e");`,
      `import f from "./f.ts"; export { g } from './g.ts';`,
      `const h = await import("./h.ts"); const i = require("./i.ts");`,
      `import type { J } from "./j.ts"; import "./k.ts";`,
    ].join("\n");
    expect(importSpecifiers(src)).toEqual(["./f.ts", "./g.ts", "./h.ts", "./i.ts", "./j.ts", "./k.ts"]);
  });

  test("furing's own tree keeps the rule", () => {
    const r = check(REPO);
    expect(r.out).toContain("every import keeps the layer rule");
    expect(r.code).toBe(0);
  });
});
