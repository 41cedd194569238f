/** Moved to runtime/check/compare.ts (shared with `furing check`); kept so imports from here still work. */
export * from "../../runtime/check/compare.ts";
