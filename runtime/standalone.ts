/**
 * A fact about the process, not a layer of the runtime: whether it runs as a `bun build --compile`
 * executable (the furing binary or a compiled plugin), where no source tree exists. The host, the
 * CLI, the test kit and the checker all ask it, so it imports nothing.
 */
export function isStandalone(): boolean {
  return Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
}
