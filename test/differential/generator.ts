/** Moved to runtime/check/generator.ts (shared with `furing check`); kept so imports from here still work. */
export * from "../../runtime/check/generator.ts";
