// The web chat of `duet quickstart` in headless Chromium (Debian's chromium, driven by
// playwright-core): an order-status question answered through the form, a delivery question
// answered from the knowledge base, and an off-topic question answered by the GPT the quick
// start trained, served on the same port. Usage: node quickstart.mjs http://127.0.0.1:PORT
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
  // Sends `text` and returns the bot's messages once the reply stream has ended.
  const say = async (text) => {
    const before = await bots.count();
    const done = page.waitForResponse((r) => r.url().endsWith("/webhooks/rest/stream"), { timeout: 60000 });
    await page.fill("#text", text);
    await page.press("#text", "Enter");
    await (await done).finished();
    await page.waitForFunction((n) => document.querySelectorAll(".msg.bot").length > n, before, { timeout: 10000 });
    return (await bots.allTextContents()).slice(before).join(" / ");
  };
  if (!(await say("where is my order?")).includes("order number")) await fail("form did not ask for the order number");
  if (!(await say("ORD-12345")).includes("email")) await fail("form did not ask for the email");
  const status = await say("jane@example.com");
  if (!status.includes("Order ORD-12345 for jane@example.com")) await fail("status: " + status);
  const delivery = await say("Can a sofa be delivered by express?");
  if (!delivery.includes("Express delivery arrives")) await fail("knowledge: " + delivery);
  const lm = await say("what is the meaning of life?");
  if (!lm.trim() || lm.startsWith("Sorry") || lm.startsWith("Error")) await fail("language model: " + lm);
  console.log("quickstart chat: all checks passed; the LM said: " + lm.slice(0, 80));
} catch (e) {
  await fail(String(e));
}
await browser.close();
