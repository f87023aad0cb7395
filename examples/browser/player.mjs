// Opens client.html in headless Chromium and prints what it did (window.result) as JSON.
//   node player.mjs <page URL> [chromium executable]
import { chromium } from "playwright-core";

const [url, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
});
try {
  const page = await browser.newPage();
  page.on("console", (message) => console.error(`page: ${message.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.result !== null, null, { timeout: 60_000 });
  console.log(JSON.stringify(await page.evaluate(() => window.result)));
} finally {
  await browser.close();
}
