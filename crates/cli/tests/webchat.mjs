// The web chat of `duet dialog serve` in headless Chromium (Debian's chromium, driven by
// playwright-core): type a message and see the reply, fill the order form, click a button,
// reload and see the history. Usage: node webchat.mjs http://127.0.0.1:PORT
import { chromium } from "playwright-core";

const base = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const fail = async (why) => { console.error("FAIL: " + why); await browser.close(); process.exit(1); };
try {
  const page = await browser.newPage();
  await page.goto(base + "/chat");
  const bots = page.locator(".msg.bot");
  const say = async (text) => {
    const before = await bots.count();
    await page.fill("#text", text);
    await page.press("#text", "Enter");
    await page.waitForFunction((n) => document.querySelectorAll(".msg.bot").length > n, before, { timeout: 10000 });
    return (await bots.last().textContent()) || "";
  };
  const hello = await say("hello");
  if (!hello.includes("I can")) await fail("greeting: " + hello);
  if (!(await say("where is my order?")).includes("order number")) await fail("form did not ask for the order number");
  if (!(await say("ORD-12345")).includes("email")) await fail("form did not ask for the email");
  const status = await say("jane@example.com");
  if (!status.includes("Order ORD-12345 for jane@example.com")) await fail("status: " + status);
  await say("I want to return my phone from ORD-98765");
  const button = page.locator(".buttons button", { hasText: "It arrived damaged" }).last();
  const before = await bots.count();
  await button.click();
  await page.waitForFunction((n) => document.querySelectorAll(".msg.bot").length > n, before, { timeout: 10000 });
  const booked = (await bots.last().textContent()) || "";
  if (!booked.includes("phone") || !booked.includes("damaged")) await fail("button: " + booked);
  const shown = await page.locator(".msg").count();
  await page.reload();
  await page.waitForFunction((n) => document.querySelectorAll(".msg").length >= n, shown, { timeout: 10000 });
  const again = await page.locator(".msg").allTextContents();
  if (!again.some((t) => t.includes("Order ORD-12345 for jane@example.com"))) await fail("history after reload: " + again.join(" | "));
  console.log("web chat: all checks passed (" + again.length + " messages after reload)");
} catch (e) {
  await fail(String(e));
}
await browser.close();
