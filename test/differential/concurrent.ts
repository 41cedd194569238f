/** Moved to runtime/check/concurrent.ts (shared with `furing check`); kept so imports from here still work. */
export * from "../../runtime/check/concurrent.ts";
