// The page's browser suite (`cargo xtask web test`): Debian's chromium, driven headless, against
// a real host that the suite starts (tests/host.ts) on the real servers and Keycloak.
import { defineConfig } from "@playwright/test";

const executablePath = process.env.ORDERPIPE_CHROMIUM;
if (!executablePath) {
  throw new Error("ORDERPIPE_CHROMIUM must name the chromium binary (cargo xtask web test sets it)");
}

export default defineConfig({
  testDir: "tests",
  // One host, one story: the tests share it and run in order.
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  use: {
    browserName: "chromium",
    launchOptions: { executablePath },
    trace: "retain-on-failure",
  },
});
