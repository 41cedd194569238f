/** Moved to runtime/check/ops.ts (shared with `furing check`); kept so imports from here still work. */
export * from "../../runtime/check/ops.ts";
