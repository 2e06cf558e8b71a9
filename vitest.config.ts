import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores here: real registries and qemu run beside the tests.
    maxWorkers: 2,
    reporters: process.env["CI"] ? ["verbose"] : ["default"],
  },
});
