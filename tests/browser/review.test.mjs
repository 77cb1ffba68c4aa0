// End-to-end test of the review pages in Debian's chromium (headless), driven by
// playwright-core. `tests/browser/run` prepares everything and runs it with:
//   BASE_URL     the running `trialdesk run` (web pages + sender)
//   OUTBOX_DIR   where the file transport writes sent mail
//   TD_USER, TD_PASSWORD   a staff account
// (The screenshots, in Chinese, are taken by workspace.test.mjs.)
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const OUTBOX = process.env.OUTBOX_DIR;
const USER = process.env.TD_USER;
const PASSWORD = process.env.TD_PASSWORD;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
assert.ok(BASE && OUTBOX && USER && PASSWORD, "run me through tests/browser/run");

/** Polls `check` until it returns a truthy value or `ms` pass. */
async function eventually(check, ms = 15000, what = "condition") {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function outboxFiles() {
  if (!fs.existsSync(OUTBOX)) return [];
  return fs
    .readdirSync(OUTBOX)
    .filter((f) => f.endsWith(".eml"))
    .map((f) => fs.readFileSync(path.join(OUTBOX, f), "latin1"));
}

test("staff work through the review queue in a real browser", async (t) => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "td-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    locale: "en-US", // the English pages (workspace.test.mjs covers the Chinese ones)
    javaScriptEnabled: true, // on, so that a script that slipped through WOULD run
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const dialogs = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  // Nothing may leave for other hosts (the tracking pixel in the hostile mail, above all).
  const foreign = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.origin !== new URL(BASE).origin) {
      foreign.push(url.href);
      return route.abort();
    }
    return route.continue();
  });

  try {
    await t.test("pages need a sign-in", async () => {
      await page.goto(`${BASE}/queue`);
      assert.match(new URL(page.url()).pathname, /^\/login$/);
      await page.fill("#name", USER);
      await page.fill("#password", "not the password");
      await page.click("button[type=submit]");
      await page.waitForSelector("text=Wrong name or password");
      await page.fill("#password", PASSWORD);
      await Promise.all([page.waitForURL(`${BASE}/queue`), page.click("button[type=submit]")]);
      const cookies = await context.cookies(BASE);
      const session = cookies.find((c) => c.name === "td_session");
      assert.ok(session, "session cookie set");
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, "Strict");
    });

    await t.test("the queue lists what waits, with reasons and counts", async () => {
      const rows = page.locator("table.queue tbody tr");
      await eventually(async () => (await rows.count()) >= 4, 5000, "queue rows");
      const text = await page.locator("main").innerText();
      for (const want of ["dmarc fail", "unknown sender", "other subject", "试用终端追踪请求", "Trial Endpoint Tracking Request"]) {
        assert.ok(text.includes(want), `queue shows ${want}:\n${text}`);
      }
      // Search by loan number narrows the list.
      await page.fill("input[name=q]", "D30261002");
      await Promise.all([page.waitForURL(/q=D30261002/), page.click("form.filters button[type=submit]")]);
      assert.equal(await rows.count(), 1);
      await page.goto(`${BASE}/queue`);
    });

    await t.test("a received HTML mail cannot run script", async () => {
      const titleBefore = "Trial Endpoint Tracking Request";
      await page.goto(`${BASE}/queue?q=mallory`);
      await Promise.all([
        page.waitForURL(/\/items\/\d+$/),
        page.locator("table.queue tbody tr a", { hasText: titleBefore }).first().click(),
      ]);
      await page.waitForSelector(".mail-html");
      // Give anything that might run a moment to do so.
      await page.waitForTimeout(500);
      const state = await page.evaluate(() => ({
        pwned: window.__pwned,
        parentPwned: window.parent.__pwned,
        title: document.title,
        scripts: Array.from(document.querySelectorAll("script")).map((s) => s.getAttribute("src")),
        handlers: document.querySelectorAll("[onerror],[onload],[onclick]").length,
        iframes: document.querySelectorAll(".mail-html iframe").length,
        html: document.querySelector(".mail-html").innerHTML,
      }));
      assert.equal(state.pwned, undefined, "no script ran");
      assert.equal(state.parentPwned, undefined, "no script ran");
      assert.ok(!state.title.includes("pwned"), state.title);
      assert.deepEqual(state.scripts, ["/static/app.js"], "only the pages' own script");
      assert.equal(state.handlers, 0);
      assert.equal(state.iframes, 0);
      assert.ok(state.html.includes("<b>D20261001</b>"), state.html);
      assert.ok(!state.html.includes("tracker.evil.example.org"), state.html);
      const blocked = await page.locator("text=remote image(s) blocked").count();
      assert.equal(blocked, 1);
      // Clicking the javascript: link (now without href) runs nothing either.
      await page.locator(".mail-html a", { hasText: "Track here" }).click();
      await page.waitForTimeout(200);
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
      assert.deepEqual(dialogs, []);
    });

    let itemUrl;
    await t.test("answer a queued message with the tracking template", async () => {
      await page.goto(`${BASE}/queue?reason=dmarc_fail`);
      await Promise.all([
        page.waitForURL(/\/items\/\d+$/),
        page.locator("table.queue tbody tr a", { hasText: "试用终端追踪请求" }).first().click(),
      ]);
      itemUrl = page.url();
      const body = await page.locator("main").innerText();
      assert.ok(body.includes("请查询 D20261001"), body);
      assert.ok(body.includes("dmarc=fail"), "the authentication verdict is shown");
      const box = page.locator('input[name=loan][value="D20261001"]');
      assert.ok(await box.isChecked(), "the mail's number is preselected");
      const form = page.locator("form", { has: page.locator('input[name=mode][value="template"]') });
      // Preview first, then send from the preview.
      await Promise.all([page.waitForURL(/\/answer$/), form.locator('button[value="preview"]').click()]);
      const preview = await page.locator("pre.mail-text").innerText();
      assert.ok(preview.includes("D20261001") && preview.includes("EA920049643CN"), preview);
      await Promise.all([page.waitForURL(/\/queue\?done=answered/), page.click('button[value="send"]')]);
      await page.waitForSelector("text=the reply is in the outbox");
    });

    await t.test("the item left the queue and the reply was sent, threaded", async () => {
      const itemPath = new URL(itemUrl).pathname;
      await page.goto(`${BASE}/queue`);
      assert.equal(await page.locator(`table.queue a[href="${itemPath}"]`).count(), 0, "item left the queue");
      await page.goto(`${BASE}/queue?state=resolved`);
      assert.equal(await page.locator(`table.queue a[href="${itemPath}"]`).count() > 0, true);
      // The sender (same process) delivers it: the file appears in the outbox folder.
      const reply = await eventually(
        () => outboxFiles().find((m) => m.includes("In-Reply-To: <dmarc-1@mail.huadong.example.cn>")),
        15000,
        "the staff reply in the outbox folder",
      );
      assert.match(reply, /X-Trialdesk: staff-reply/);
      assert.match(reply, /^To: .*wangwei@huadong\.example\.cn/m);
      assert.doesNotMatch(reply, /Auto-Submitted/);
      // History shows it as sent.
      await page.goto(`${BASE}/history?q=D20261001&purpose=staff_reply`);
      await eventually(async () => {
        await page.reload();
        return (await page.locator("table tbody tr .badge.sent").count()) === 1;
      }, 15000, "history to show the reply as sent");
      await page.goto(`${BASE}/audit?action=answer_template`);
      const audit = await page.locator("main").innerText();
      assert.ok(audit.includes(USER), audit);
    });

    await t.test("sign out", async () => {
      await Promise.all([page.waitForURL(/\/login$/), page.click("header form.who button")]);
      await page.goto(`${BASE}/queue`);
      assert.match(new URL(page.url()).pathname, /^\/login$/);
    });

    assert.deepEqual(foreign, [], "no request left for another host");
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});
