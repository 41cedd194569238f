#!/usr/bin/env bun
/**
 * furing's command line: mount, unmount, status, check, compile.
 */
import { catchStrayErrors, exitOnError } from "./fatal.ts";
import { mountCommand, MOUNT_USAGE } from "./mount.ts";
import { unmountCommand, UNMOUNT_USAGE } from "./unmount.ts";
import { statusCommand, STATUS_USAGE } from "./status.ts";
import { compileCommand, COMPILE_USAGE } from "./compile.ts";
import { checkCommand, CHECK_USAGE } from "./check.ts";
import { EXECUTOR_COMMAND } from "../check/client.ts";
import { VERSION, versionLine } from "./version.ts";

const USAGE = `furing ${VERSION}: FUSE filesystems as TypeScript plugins, over FUSE-over-io_uring

Usage:
${MOUNT_USAGE}
${UNMOUNT_USAGE}
${STATUS_USAGE}
${CHECK_USAGE}
${COMPILE_USAGE}
  furing --version

Run 'furing <command> --help' for details.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "mount":
      return mountCommand(rest);
    case "unmount":
    case "umount":
      return unmountCommand(rest);
    case "status":
      return statusCommand(rest);
    case "compile":
      return compileCommand(rest);
    case "check":
      return checkCommand(rest);
    case EXECUTOR_COMMAND:
      // furing check's executor processes, when furing runs as the compiled binary
      await (await import("../check/executor.ts")).serveExecutor();
      return 0;
    case "--version":
    case "-V":
      console.log(versionLine());
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      // mount.fuse3 (fstab, mount -t fuse.furing) runs `furing <source> <mountpoint> -o <opts>`:
      // mount <source> as the plugin and return once mounted, as libfuse programs do
      // (an explicit -f keeps it in the foreground, as libfuse's -f does)
      if (rest.length >= 1 && !cmd.startsWith("-") && !rest[0]!.startsWith("-")) return mountCommand([cmd, ...rest, ...(rest.includes("-f") || rest.includes("--foreground") ? [] : ["--background"])]);
      console.error(`furing: unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}

// the operation an error line names: the command, or `mount` for mount.fuse3's calling convention
const first = process.argv[2];
const op = first === undefined || first.startsWith("-") ? undefined : ["unmount", "umount", "status", "compile", "check"].includes(first) ? first : "mount";
catchStrayErrors("furing", op);
try {
  const code = await main(process.argv.slice(2));
  process.exit(code);
} catch (e) {
  exitOnError("furing", op, e);
}
