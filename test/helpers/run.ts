/** Running external tools from tests with a timeout (the test kit's, runtime/testing/run.ts). */
export * from "../../runtime/testing/run.ts";
