/** Moved to runtime/check/runner.ts (shared with `furing check`); kept so imports from here still work. */
export * from "../../runtime/check/runner.ts";
