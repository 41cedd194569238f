/**
 * cli/fatal.ts: whatever ends the command line reaches the user as one line naming the operation,
 * the path and the cause, with exit status 1 (2 for usage errors), never as a stack trace; also
 * for exceptions thrown outside the command's promise chain.
 */
import { describe, expect, test } from "bun:test";
import { openSync } from "node:fs";
import { join } from "node:path";
import { fatalLine } from "../../runtime/cli/fatal.ts";
import { UsageError } from "../../runtime/mount/options.ts";
import { MountError } from "../../runtime/mount/mount.ts";

const FATAL = join(import.meta.dir, "../../runtime/cli/fatal.ts");

describe("fatalLine", () => {
  test("a node:fs error names the syscall, the path and the errno", () => {
    let err: unknown;
    try {
      openSync("/nonexistent-furing-dir/x.log", "a");
    } catch (e) {
      err = e;
    }
    expect(fatalLine("furing", "mount", err)).toBe("furing mount: open /nonexistent-furing-dir/x.log: no such file or directory (ENOENT)");
  });

  test("furing's own errors keep their message", () => {
    expect(fatalLine("furing", "mount", new MountError("/m: not mounted"))).toBe("furing: /m: not mounted");
    expect(fatalLine("myfs", "mount", new UsageError("needs one <mountpoint>"))).toBe("myfs: needs one <mountpoint>");
  });

  test("anything else is an internal error with its first line and where it was thrown", () => {
    const line = fatalLine("furing", "status", new TypeError("x is not a function\nsecond line"));
    expect(line).toMatch(/^furing status: internal error: TypeError: x is not a function \(at \/\S+fatal\.test\.ts:\d+:\d+\)$/);
    expect(fatalLine("furing", undefined, "a string")).toBe("furing: internal error: a string");
  });
});

describe("exceptions outside the command's promise chain", () => {
  for (const [kind, code] of [
    ["a throw in a timer", `setTimeout(() => { throw new RangeError("boom in a timer"); }, 1);`],
    ["an unhandled rejection", `void Promise.reject(new Error("boom in a promise"));`],
  ] as const) {
    test(`${kind}: one line, exit 1`, async () => {
      const script = `import { catchStrayErrors } from ${JSON.stringify(FATAL)};\ncatchStrayErrors("furing", "status");\n${code}\nawait Bun.sleep(2000);\nconsole.log("not reached");\n`;
      const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", env: { ...process.env, FURING_DEBUG: "" } });
      const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
      expect(await p.exited).toBe(1);
      expect(out).toBe("");
      expect(err.trim().split("\n")).toEqual([expect.stringMatching(/^furing status: internal error: (RangeError: boom in a timer|Error: boom in a promise) \(at .+:\d+:\d+\)$/)]);
    });
  }
});
