// The development sign-in of an open host (`[auth] mode = "none"`): clearly marked, it only
// picks a customer name; that customer's orders are created, listed and followed live, also
// across the reconnections of a stream the host ends every few seconds.

import { expect, test } from "@playwright/test";
import { startHost, type Host } from "./host";

let host: Host;
/** Streams end this soon, so the page must reconnect (with Last-Event-ID) during the test. */
const STREAM_LIFETIME_MS = 3_000;

test.beforeAll(async () => {
  host = await startHost("none", STREAM_LIFETIME_MS);
});

test.afterAll(async () => {
  await host?.stop();
});

test("an open host offers the marked development sign-in; the picked customer orders and follows it", async ({
  page,
}) => {
  const customer = `dev-${Date.now()}`;
  await page.goto(`${host.url}/`);
  await expect(page.getByRole("heading", { name: "Development sign-in" })).toBeVisible();
  await expect(page.getByRole("note")).toContainText('mode = "none"');
  await page.getByLabel("Customer name").fill(customer);
  await page.getByRole("button", { name: "Continue as this customer" }).click();
  await expect(page.getByTestId("signed-in-as")).toHaveText(customer);
  await expect(page.getByText("development", { exact: true })).toBeVisible();
  await expect(page.getByText("No orders yet.")).toBeVisible();

  await page.getByLabel("SKU").fill("PEN-1");
  await page.getByLabel("Unit price").fill("3");
  await page.getByRole("button", { name: "Place order" }).click();
  await expect(page.getByTestId("order-status")).toHaveText("awaiting_payment");
  const orderId = page.url().split("/").pop() ?? "";

  const post = async (type: string, data: object) => {
    const answer = await fetch(`${host.url}/api/orders/${orderId}/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type, data }),
    });
    expect(answer.status).toBe(202);
  };
  const resumedAfterPayment = page.waitForRequest(
    (request) => request.url().endsWith(`/${orderId}/stream`) && request.headers()["last-event-id"] === "2",
    { timeout: 3 * STREAM_LIFETIME_MS },
  );
  // The open API takes the payment from anyone; the page hears it live.
  await post("payment_received", { amount: 3 });
  await expect(page.getByTestId("order-status")).toHaveText("paid", { timeout: 2_000 });
  // The host ends the stream; the page reconnects from the last version it got...
  await resumedAfterPayment;
  await expect(page.getByTestId("stream-state")).toHaveText("Live");
  // ... and what comes next still arrives, once.
  await post("shipped", {});
  await expect(page.getByTestId("order-status")).toHaveText("shipped", { timeout: 2_000 });
  await expect(page.getByTestId("timeline-entry")).toHaveCount(3);

  await page.getByRole("link", { name: "← My orders" }).click();
  const listed = page.getByRole("list", { name: "My orders" }).getByRole("listitem");
  await expect(listed).toHaveCount(1);
  await expect(listed).toContainText("shipped");
});
