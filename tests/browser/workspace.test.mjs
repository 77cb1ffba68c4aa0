// The staff workspace in Debian's chromium (headless): languages, assignment, notes, the
// thread beside the mail, bulk actions, a conflict that keeps the typed text, a 390 px
// phone, the keyboard, and no Content-Security-Policy error on any page. Runs after
// review.test.mjs against the same server (tests/browser/run):
//   BASE_URL, TD_USER, TD_USER2, TD_PASSWORD, SCREENSHOT, SCREENSHOT_ITEM
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const USER = process.env.TD_USER;
const USER2 = process.env.TD_USER2;
const PASSWORD = process.env.TD_PASSWORD;
const SCREENSHOT = process.env.SCREENSHOT || "";
const SCREENSHOT_ITEM = process.env.SCREENSHOT_ITEM || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
assert.ok(BASE && USER && USER2 && PASSWORD, "run me through tests/browser/run");

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const profiles = [];
/** A fresh browser (own cookies) whose pages report console errors into `errors`. */
async function browser(locale, viewport = { width: 1280, height: 860 }) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "td-chromium-"));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    locale,
    javaScriptEnabled: true,
    args: ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  return { context, page, errors };
}

async function signIn(page, user) {
  await page.goto(`${BASE}/login`);
  await page.fill("#name", user);
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(/\/queue/), page.click("button[type=submit]")]);
}

/** Opens the open item whose row mentions `text`; returns its path. */
async function openItem(page, text) {
  await page.goto(`${BASE}/queue`);
  const link = page.locator("table.queue tbody tr", { hasText: text }).first().locator("td.subject a");
  await Promise.all([page.waitForURL(/\/items\/\d+/), link.click()]);
  return new URL(page.url()).pathname;
}

test("the staff workspace in a real browser", async (t) => {
  // A browser asking for a language the pages do not speak: the default, Chinese.
  const zh = await browser("fr-FR");
  const en = await browser("en-US");
  const other = await browser("fr-FR");
  const all = [zh, en, other];
  let rmaItem; // the follow-up mail's item (resolved later by the bulk test)
  try {
    await t.test("Chinese by default, English by the browser's header", async () => {
      await zh.page.goto(`${BASE}/login`);
      assert.equal(await zh.page.getAttribute("html", "lang"), "zh-CN");
      assert.ok((await zh.page.locator("main").innerText()).includes("登录"));
      await signIn(zh.page, USER);
      const text = await zh.page.locator("main").innerText();
      assert.ok(text.includes("待审队列"), text);
      assert.match(await zh.page.title(), /^\(\d+\) 待审队列/);
      await en.page.goto(`${BASE}/login`);
      assert.equal(await en.page.getAttribute("html", "lang"), "en");
      await signIn(en.page, USER2);
      assert.ok((await en.page.locator("main").innerText()).includes("Review queue"));
    });

    await t.test("screenshots of the queue and an item page, in Chinese", async () => {
      await zh.page.goto(`${BASE}/queue`);
      if (SCREENSHOT) await zh.page.screenshot({ path: SCREENSHOT, fullPage: false });
      await openItem(zh.page, "Re: RMA");
      if (SCREENSHOT_ITEM) await zh.page.screenshot({ path: SCREENSHOT_ITEM, fullPage: true });
    });

    await t.test("the user's setting beats the browser's header", async () => {
      await other.page.goto(`${BASE}/login`);
      await signIn(other.page, USER2);
      await other.page.goto(`${BASE}/settings`);
      await other.page.selectOption("#language", "en");
      await Promise.all([other.page.waitForURL(/saved=1/), other.page.click("form.panel button[type=submit]")]);
      assert.equal(await other.page.getAttribute("html", "lang"), "en");
      assert.ok((await other.page.locator("main").innerText()).includes("Settings saved."));
      await other.page.goto(`${BASE}/queue`);
      assert.ok((await other.page.locator("main").innerText()).includes("Review queue"));
      // And back to "as the browser asks" (fr: the default, Chinese).
      await other.page.goto(`${BASE}/settings`);
      await other.page.selectOption("#language", "");
      await Promise.all([other.page.waitForURL(/saved=1/), other.page.click("form.panel button[type=submit]")]);
      assert.equal(await other.page.getAttribute("html", "lang"), "zh-CN");
    });

    await t.test("the item page shows the partner, the shipments and the thread", async () => {
      rmaItem = await openItem(zh.page, "Re: RMA");
      const partner = await zh.page.locator("#context-partner").innerText();
      assert.ok(partner.includes("华东智联科技有限公司"), partner);
      const shipments = await zh.page.locator("#context-shipments").innerText();
      assert.ok(shipments.includes("D20261003") && shipments.includes("JDX000486399531"), shipments);
      const thread = zh.page.locator("#context-thread a", { hasText: "RMA 标签丢失" });
      assert.equal(await thread.count(), 1, await zh.page.locator("#context-thread").innerText());
      await Promise.all([zh.page.waitForURL(/\/items\/\d+/), thread.click()]);
      assert.ok((await zh.page.locator("main").innerText()).includes("RMA 标签丢失"));
    });

    await t.test("assign to me, see it under mine, unassign; add a note", async () => {
      const item = await openItem(zh.page, "Rückgabe");
      await Promise.all([zh.page.waitForURL(/done=assigned/), zh.page.click("#assign-me")]);
      assert.equal((await zh.page.locator("#assignee").innerText()).trim(), USER);
      await zh.page.goto(`${BASE}/queue?view=mine`);
      const mine = zh.page.locator(`table.queue tbody tr a[href="${item}"]`);
      assert.ok((await mine.count()) > 0, "the item is under mine");
      const row = zh.page.locator("table.queue tbody tr", { has: zh.page.locator(`a[href="${item}"]`) });
      assert.equal((await row.locator("td.assignee").innerText()).trim(), USER);
      await zh.page.goto(`${BASE}${item}`);
      await Promise.all([zh.page.waitForURL(/done=unassigned/), zh.page.click("#unassign")]);
      await zh.page.goto(`${BASE}/queue?view=mine`);
      assert.equal(await zh.page.locator(`table.queue tbody tr a[href="${item}"]`).count(), 0);
      await zh.page.goto(`${BASE}${item}`);
      await zh.page.fill("#note-form textarea", "已电话联系 Jonas，等待回复");
      await Promise.all([zh.page.waitForURL(/done=noted/), zh.page.click("#note-form button")]);
      const activity = await zh.page.locator("#activity").innerText();
      assert.ok(activity.includes("已电话联系 Jonas，等待回复"), activity);
    });

    await t.test("two people answering: the second keeps the typed text", async () => {
      const item = await openItem(zh.page, "Rückgabe");
      await en.page.goto(`${BASE}${item}`);
      // en answers first.
      await en.page.fill("#reply", "Hello Jonas, we are on it.");
      await Promise.all([en.page.waitForURL(/done=answered/), en.page.locator("#reply").locator("xpath=ancestor::form").locator('button[value="send"]').click()]);
      // zh still has the old page and sends.
      const typed = "Jonas 您好：设备已寄出。";
      await zh.page.fill("#reply", typed);
      await zh.page.locator("#reply").locator("xpath=ancestor::form").locator('button[value="send"]').click();
      await zh.page.waitForSelector("#problem");
      assert.equal(await zh.page.inputValue("#kept"), typed);
      assert.ok((await zh.page.locator("#problem").innerText()).includes("您的回复未发送"));
    });

    await t.test("bulk resolve with one note, bulk retry", async () => {
      await zh.page.goto(`${BASE}/queue`);
      const boxes = zh.page.locator("table.queue tbody input[name=id]");
      const before = await boxes.count();
      assert.ok(before >= 2, `rows to select: ${before}`);
      const ids = [await boxes.nth(0).getAttribute("value"), await boxes.nth(1).getAttribute("value")];
      // Retry on items that are not dead letters: each is refused on its own, listed.
      await boxes.nth(0).check();
      await Promise.all([zh.page.waitForURL(/done=bulk/), zh.page.click('#bulk button[value="retry"]')]);
      const refused = await zh.page.locator(".notice").innerText();
      assert.ok(refused.includes("1 个事项未能完成"), refused);
      // Resolve two with one note.
      await zh.page.locator(`input[name=id][value="${ids[0]}"]`).check();
      await zh.page.locator(`input[name=id][value="${ids[1]}"]`).check();
      await zh.page.fill("#bulk input[name=note]", "批量处理：重复邮件");
      await Promise.all([zh.page.waitForURL(/done=bulk&ok=2/), zh.page.click('#bulk button[value="resolve"]')]);
      for (const id of ids) {
        assert.equal(await zh.page.locator(`table.queue a[href="/items/${id}"]`).count(), 0, `item ${id} left the queue`);
      }
      await zh.page.goto(`${BASE}/audit?action=resolve`);
      const audit = await zh.page.locator("main").innerText();
      assert.equal(audit.split("批量处理：重复邮件").length - 1, 2, audit);
    });

    await t.test("the keyboard: j/k move, o opens, r goes to the reply, a assigns, ? helps", async () => {
      await zh.page.goto(`${BASE}/queue`);
      await zh.page.keyboard.press("j");
      const first = zh.page.locator("tr.current");
      assert.equal(await first.count(), 1);
      const firstId = await first.getAttribute("data-id");
      await zh.page.keyboard.press("j");
      await zh.page.keyboard.press("k");
      assert.equal(await zh.page.locator("tr.current").getAttribute("data-id"), firstId);
      await zh.page.keyboard.press("?");
      assert.ok(await zh.page.locator("#keys-help").isVisible());
      await zh.page.keyboard.press("Escape");
      assert.ok(!(await zh.page.locator("#keys-help").isVisible()));
      await Promise.all([zh.page.waitForURL(new RegExp(`/items/${firstId}$`)), zh.page.keyboard.press("o")]);
      await zh.page.keyboard.press("r");
      assert.equal(await zh.page.evaluate(() => document.activeElement && document.activeElement.id), "reply");
      await zh.page.locator("#reply").blur();
      await Promise.all([zh.page.waitForURL(/done=assigned/), zh.page.keyboard.press("a")]);
      assert.equal((await zh.page.locator("#assignee").innerText()).trim(), USER);
      // The skip link is the first thing the keyboard reaches.
      await zh.page.goto(`${BASE}/queue`);
      await zh.page.keyboard.press("Tab");
      assert.equal(await zh.page.evaluate(() => document.activeElement.className), "skip");
    });

    await t.test("390 px wide: no horizontal scrolling on queue, item and history", async () => {
      const phone = await browser("zh-CN", { width: 390, height: 844 });
      all.push(phone);
      await signIn(phone.page, USER);
      for (const p of ["/queue", rmaItem, "/history", "/audit", "/import", "/settings", "/reports"]) {
        await phone.page.goto(`${BASE}${p}`);
        const widths = await phone.page.evaluate(() => ({
          scroll: document.documentElement.scrollWidth,
          inner: window.innerWidth,
        }));
        assert.ok(widths.scroll <= widths.inner, `${p}: ${widths.scroll}px wide in a ${widths.inner}px window`);
      }
    });

    await t.test("no page logs a Content-Security-Policy error (or any error)", async () => {
      const pages = ["/login", "/queue", "/history", "/audit", "/import", "/settings", "/reports", "/queue?view=mine", rmaItem];
      const anon = await browser("zh-CN");
      all.push(anon);
      await anon.page.goto(`${BASE}/login`);
      for (const p of pages.slice(1)) await zh.page.goto(`${BASE}${p}`);
      // The hostile HTML mail's item page too (sanitised HTML must not trip the policy).
      await zh.page.goto(`${BASE}/queue?q=mallory&state=open`);
      const hostile = zh.page.locator("table.queue tbody tr td.subject a").first();
      if ((await hostile.count()) > 0) {
        await Promise.all([zh.page.waitForURL(/\/items\/\d+/), hostile.click()]);
        await zh.page.waitForSelector(".mail-html");
      }
      await zh.page.goto(`${BASE}${rmaItem}`);
      assert.equal(await zh.page.locator("#mail-h").count(), 1, "the item page with its mail was checked");
      // The one expected error: the 409 of the conflict test's refused answer.
      const errors = all
        .flatMap((b) => b.errors)
        .filter((e) => !/\/answer: .*status of 409/.test(e));
      assert.deepEqual(errors, [], errors.join("\n"));
      const conflict = all.flatMap((b) => b.errors).filter((e) => /status of 409/.test(e));
      assert.equal(conflict.length, 1, "the conflict test's refused answer");
    });
  } finally {
    for (const b of all) await b.context.close();
    for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
  }
});
