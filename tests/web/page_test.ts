/// <reference lib="dom" />
/**
 * The web page in headless Chromium: it loads without a console error, finds the WebGPU adapter, shows
 * the CLI's defaults, says in one line when the browser has no WebGPU (and keeps Run disabled), turns a
 * bad input into one line of error, and never leaves the local origin except for the hub ids it is given.
 */

import { assert, assertEquals } from "../assert.ts";
import { DIFF, DIFF_DEFAULTS, STEER } from "../../lib/cli/commands.ts";
import type { Page } from "playwright-core";
import { NO_WEBGPU_ARGS, openSite, waitForState } from "./harness.ts";

/** Presses Run and waits for the run to end; its end state. */
async function run(page: Page): Promise<string> {
  await page.evaluate(() => document.body.dataset.state = "pressed");
  await page.locator("#run").click();
  return await waitForState(page, ["error", "done", "idle"]);
}

Deno.test("the page loads cleanly, finds a WebGPU adapter, shows the CLI's defaults and stays on its origin", async () => {
  const session = await openSite();
  try {
    const { page } = session;
    assertEquals(await waitForState(page, ["idle", "nogpu", "error"]), "idle");
    const adapter = await page.evaluate(() => document.body.dataset.adapter);
    assert(adapter && adapter !== "none", `adapter: ${adapter}`);
    const value = (id: string) => page.locator(`#${id}`).inputValue();
    assertEquals(await value("layer"), String(DIFF_DEFAULTS.layer));
    assertEquals(await value("seed"), DIFF.flags.seed.default);
    assertEquals(await value("token-types"), DIFF.flags["token-types"].default);
    assertEquals(await value("top-k"), String(DIFF_DEFAULTS.topK));
    assertEquals(await value("batch-size"), String(DIFF_DEFAULTS.batchSize));
    assertEquals(await value("checkpoint-every"), String(DIFF_DEFAULTS.checkpointEvery));
    assertEquals(await value("n"), "");
    assertEquals(await value("steer-mags"), STEER.flags.mag.default);
    assertEquals(await page.locator("#steer-greedy").isChecked(), STEER.flags.greedy.default);
    assert(await page.locator("#run").isEnabled(), "Run is enabled");
    assert(await page.locator("#error").isHidden(), "no error shown");
    assert(/cache: \d/.test(await page.locator("#cache-size").innerText()), "cache size shown");

    // A run with nothing picked: one line naming what is missing, no console error.
    assertEquals(await run(page), "error");
    assertEquals(await page.locator("#error").innerText(), "base model: pick its folder or enter its hub id");

    // Hub ids: the page asks the hub itself (this machine reaches none), and says so in one line.
    await page.locator("#base-hub").fill("org/base");
    await page.locator("#chat-hub").fill("org/chat");
    await page.locator("#sae-hub").fill("org/sae");
    await page.locator("#prompts-text").fill("hello\nworld\n");
    await run(page);
    const line = await page.locator("#error").innerText();
    assert(line.startsWith("could not reach https://huggingface.co for org/base/"), line);
    assert(await page.locator("#run").isEnabled(), "Run is enabled again");

    // A bad field is one line naming it.
    await page.locator("#top-k").fill("0");
    await run(page);
    assertEquals(await page.locator("#error").innerText(), `top-k must be a whole number of at least 1, not "0"`);

    // Chromium logs the failed hub request itself ("net::ERR_..."); nothing else reaches the console.
    assertEquals(session.errors.filter((e) => !e.includes("net::ERR_") && !e.includes("Failed to load resource")), []);
    // Nothing leaves the page but the hub requests its hub ids asked for.
    const origin = new URL(session.server.url).origin;
    const foreign = session.requests.filter((url) => !url.startsWith(origin) && !url.startsWith("data:"));
    assert(foreign.length > 0 && foreign.every((url) => url.startsWith("https://huggingface.co/org/")), `${foreign}`);
  } finally {
    await session.close();
  }
});

Deno.test("without WebGPU the page says which browsers have it, in one line, and keeps Run disabled", async () => {
  const session = await openSite("index.html", NO_WEBGPU_ARGS);
  try {
    const { page } = session;
    assertEquals(await waitForState(page, ["idle", "nogpu", "error"]), "nogpu");
    assertEquals(await page.evaluate(() => document.body.dataset.adapter), "none");
    const line = await page.locator("#error").innerText();
    assert(line.includes("Chrome or Edge 113+") && line.includes("Safari 26+") && line.includes("Firefox 141+"), line);
    assert(!line.includes("\n"), "one line");
    assert(await page.locator("#run").isDisabled(), "Run is disabled");
    assert(await page.locator("#generate").isDisabled(), "Generate is disabled");
    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});
