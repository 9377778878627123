/**
 * Opens a page in headless Chromium (Debian's `chromium`, driven by playwright-core) and reports
 * console errors, page errors, what the page computes, and a screenshot.
 */

import { chromium } from "playwright-core";
import { toFileUrl } from "./url.ts";

/** What a page did when opened. */
export interface PageVisit<T> {
  errors: string[];
  result: T;
}

/** Opens `htmlPath`, waits for it to settle, evaluates `probe` in the page and saves a screenshot. */
export async function visitPage<T>(htmlPath: string, probe: string, screenshotPath: string): Promise<PageVisit<T>> {
  const browser = await chromium.launch({
    executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 700 } });
    const errors: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(toFileUrl(htmlPath), { waitUntil: "load" });
    await page.waitForTimeout(300);
    const result = await page.evaluate(probe) as T;
    await Deno.mkdir(new URL(".", toFileUrl(screenshotPath)).pathname, { recursive: true });
    await page.screenshot({ path: screenshotPath });
    return { errors, result };
  } finally {
    await browser.close();
  }
}
