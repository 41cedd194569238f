/** Moved to runtime/check/rng.ts (shared with `furing check`); kept so imports from here still work. */
export * from "../../runtime/check/rng.ts";
