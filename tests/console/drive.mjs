// Drives imgpipe's web console in headless Debian chromium, one scenario per run:
//
//   node drive.mjs SCENARIO BASE_URL [JSON_ARGS]
//
// Scenarios: `upload` (files through the page end as thumbnails and failures), `key` (the API
// key flow), `pages` (the gallery pages through every image). Exits 0 when every check holds,
// else 1 with what failed. Run by tests/console.rs, which starts the server and makes the files.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const [scenario, base, rawArgs] = process.argv.slice(2);
const args = JSON.parse(rawArgs || '{}');
const FINISH_MS = 180_000;

/** The page a scenario is on, for the failure report. */
let current = null;

/** A fresh browser page that records every dialog, page error and console error. */
async function open(browser) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  current = page;
  const problems = [];
  page.on('dialog', async (dialog) => { problems.push(`a dialog opened: ${dialog.message()}`); await dialog.dismiss(); });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A 401 is part of the key flow and the dropped PUT is the test's own doing; the browser
    // logs both as failed resource loads.
    const expected = /status of 401|ERR_CONNECTION_RESET/.test(message.text());
    if (message.type() === 'error' && !expected) problems.push(`console error: ${message.text()}`);
  });
  return { context, page, problems };
}

/** Texts of every element `selector` matches. */
const texts = (page, selector) => page.locator(selector).allTextContents();

/** A full-page screenshot at `args.screenshot` (the gallery), or beside it with `-NAME`. */
async function shoot(page, name) {
  if (!args.screenshot) return;
  const path = name ? args.screenshot.replace(/\.png$/, `-${name}.png`) : args.screenshot;
  await page.screenshot({ path, fullPage: true });
}

/** axe-core's WCAG 2 A and AA rules (labels, names, contrast, structure) on the page as it is. */
async function accessible(page, where) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] });
    return result.violations.map((v) => `${v.id} (${v.help}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility of ${where}`);
}

/** Waits until the gallery shows `n` cards. */
const cardCount = (page, n) => page.waitForFunction((want) => document.querySelectorAll('#gallery .card').length === want, n);

/** How many `<img>` under `selector` have loaded pixels. */
const loadedImages = (page, selector) => page.locator(selector).evaluateAll(
  (images) => images.filter((image) => image.complete && image.naturalWidth > 0).length,
);

/** Waits until exactly `n` of the `<img>` under `selector` have loaded pixels. */
const imagesLoaded = (page, selector, n) => page.waitForFunction(
  ([css, want]) => [...document.querySelectorAll(css)].filter((i) => i.complete && i.naturalWidth > 0).length === want,
  [selector, n],
  { timeout: 30_000 },
);

async function upload(browser) {
  const { page, problems } = await open(browser);
  // The first PUT fails once (a dropped connection): the page must offer a retry that works.
  let dropped = null;
  await page.route((url) => url.pathname.startsWith('/v1/uploads/'), async (route) => {
    if (dropped === null && route.request().method() === 'PUT') {
      dropped = route.request().url();
      await route.abort('connectionreset');
    } else {
      await route.continue();
    }
  });
  await page.goto(base);
  await page.locator('#preset option[value="default"]').waitFor({ state: 'attached' });
  assert.match(await page.locator('#preset-info').textContent(), /thumb: webp cover 256×256/);
  await page.setInputFiles('#files', args.files);

  const retry = page.getByRole('button', { name: 'Retry' });
  await retry.waitFor({ timeout: 30_000 });
  assert.ok(dropped, 'a PUT was dropped');
  await retry.click();

  const total = args.files.length;
  const expected = `${total} of ${total} uploaded · ${args.done} done · ${args.failed.length} failed`;
  await page.locator('#overall-text').filter({ hasText: expected }).waitFor({ timeout: FINISH_MS });
  await imagesLoaded(page, '#uploads img.thumb', args.done);
  const kinds = (await texts(page, '#uploads .failure strong')).sort();
  assert.deepEqual(kinds, [...args.failed].sort(), 'each failure shows its kind');
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0, 'no upload is left to retry');
  await page.locator('#stats', { hasText: /queue \d+ waiting, \d+ in flight · [\d.]+ images\/s/ }).waitFor();
  await accessible(page, 'the upload view');
  await shoot(page, 'upload');

  // The hostile name is text wherever it shows; no element came from it.
  await page.locator('#uploads td.name', { hasText: args.hostile }).waitFor();
  assert.equal(await page.locator('img[src="x"]').count(), 0, 'markup from a file name');

  // The gallery: every image, thumbnails for the DONE ones, kinds for the FAILED ones.
  await page.click('#nav-images');
  await page.locator('#gallery .card').nth(total - 1).waitFor();
  await imagesLoaded(page, '#gallery img.thumb', args.done);
  assert.equal(await page.locator('#gallery .card').count(), total);
  assert.deepEqual((await texts(page, '#gallery .failure strong')).sort(), [...args.failed].sort());
  assert.ok((await texts(page, '#gallery .card .name')).includes(args.hostile), 'the hostile name as text in the gallery');
  await page.selectOption('#status-filter', 'FAILED');
  await cardCount(page, args.failed.length);
  assert.deepEqual(await texts(page, '#gallery .badge'), args.failed.map(() => 'FAILED'), 'the status filter');
  await page.selectOption('#status-filter', '');
  await cardCount(page, total);
  await imagesLoaded(page, '#gallery img.thumb', args.done);
  await accessible(page, 'the gallery');
  await shoot(page, '');

  // An image's page: its facts, every rendition with a download, the stage timings.
  await page.getByRole('link', { name: `${args.hostile}, DONE`, exact: true }).click();
  await page.locator('#image-title', { hasText: args.hostile }).waitFor();
  assert.equal(await page.locator('#image-title').textContent(), args.hostile);
  const fact = async (term) => page.locator(`.facts dt:text-is("${term}") + dd`).textContent();
  assert.equal(await fact('File name'), args.hostile);
  assert.equal(await fact('Preset'), 'default');
  assert.match(await fact('Size'), /^\d+×\d+$/);
  assert.match(await fact('Dominant colour'), /^ #[0-9a-f]{6}$/);
  const chip = await page.locator('.facts .swatch').evaluate((node) => getComputedStyle(node).backgroundColor);
  assert.match(chip, /^rgb\(\d+, \d+, \d+\)$/, 'the chip is painted (the CSP allows CSSOM styles)');
  const rows = await page.locator('table.renditions tbody tr').count();
  assert.equal(rows, 3, 'the default preset makes three renditions');
  assert.ok(await loadedImages(page, '#image-body figure img') === 1, 'a preview');
  assert.equal(await page.locator('table.timings tbody tr').count(), 5, 'five stage timings');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download thumb' }).click()]);
  assert.match(download.suggestedFilename(), /-thumb\.webp$/);
  await accessible(page, "an image's page");
  await shoot(page, 'image');
  assert.equal(await page.locator('img[src="x"]').count(), 0);

  // A phone-sized screen: the gallery fits without sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#nav-images');
  await page.locator('#gallery .card').nth(total - 1).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px on a phone`);
  return problems;
}

async function key(browser) {
  const { page, context, problems } = await open(browser);
  await page.goto(base);
  await page.locator('#key-view').waitFor({ state: 'visible' });
  await accessible(page, 'the key form');
  assert.equal(await page.evaluate(() => fetch('/v1/images').then((r) => r.status)), 401, 'no key, no answer');
  await page.fill('#key-input', 'not-the-key');
  await page.click('#key-form button');
  await page.locator('#key-error', { hasText: 'That key was refused' }).waitFor();
  await page.fill('#key-input', args.key);
  await page.click('#key-form button');
  await page.locator('#preset option[value="default"]').waitFor({ state: 'attached' });
  assert.ok(await page.locator('#key-view').isHidden());

  // One file dropped on the page, then a folder through the folder picker.
  const bytes = [...readFileSync(args.files[0])];
  const dropped = await page.evaluateHandle((data) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(data)], 'dropped.jpg', { type: 'image/jpeg' }));
    return transfer;
  }, bytes);
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: dropped });
  await page.locator('#uploads td.name', { hasText: 'dropped.jpg' }).waitFor();
  await page.setInputFiles('#folder', args.folder);
  const total = 1 + args.folder_files.length;
  await page.locator('#overall-text', { hasText: `${total} of ${total} uploaded · ${total} done · 0 failed` })
    .waitFor({ timeout: FINISH_MS });
  const names = await texts(page, '#uploads td.name');
  assert.deepEqual(names.sort(), ['dropped.jpg', ...args.folder_files].sort(), 'folder files keep their relative path');
  await imagesLoaded(page, '#uploads img.thumb', total);

  // Kept for the tab (sessionStorage), not for the browser (localStorage).
  assert.equal(await page.evaluate(() => sessionStorage.getItem('imgpipe.apiKey')), args.key);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  await page.reload();
  await page.locator('#preset option[value="default"]').waitFor({ state: 'attached' });
  assert.ok(await page.locator('#key-view').isHidden(), 'a reload keeps the key');
  const other = await context.newPage();
  await other.goto(base);
  await other.locator('#key-view').waitFor({ state: 'visible' });
  return problems;
}

async function pages(browser) {
  const { page, problems } = await open(browser);
  await page.goto(`${base}/#/images`);
  const seen = [];
  const sizes = [];
  for (;;) {
    await page.locator('#gallery .card').first().waitFor();
    const names = await texts(page, '#gallery .card .name');
    sizes.push(names.length);
    seen.push(...names);
    if (await page.locator('#next').isDisabled()) break;
    const pageNumber = sizes.length + 1;
    await page.click('#next');
    await page.locator('#page-number', { hasText: `Page ${pageNumber}` }).waitFor();
  }
  assert.deepEqual(sizes, args.sizes, 'page sizes');
  assert.equal(new Set(seen).size, args.total, 'every image once');
  await page.click('#prev');
  await page.locator('#page-number', { hasText: `Page ${sizes.length - 1}` }).waitFor();
  assert.deepEqual(await texts(page, '#gallery .card .name'), seen.slice(-sizes.at(-1) - sizes.at(-2), -sizes.at(-1)));
  return problems;
}

const scenarios = { upload, key, pages };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}: one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.IMGPIPE_CHROMIUM || '/usr/bin/chromium',
  // As root (CI) chromium needs --no-sandbox; the rest keep it off this machine's closed network.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const problems = await scenarios[scenario](browser);
  assert.deepEqual(problems, [], 'no dialog, page error or console error');
  console.log(`console ${scenario}: ok`);
} catch (error) {
  console.error(`console ${scenario}: ${error.stack || error}`);
  if (current && process.env.IMGPIPE_CONSOLE_FAILURE) {
    await current.screenshot({ path: process.env.IMGPIPE_CONSOLE_FAILURE, fullPage: true }).catch(() => {});
    console.error(`the page as it failed: ${process.env.IMGPIPE_CONSOLE_FAILURE}`);
  } else if (current) {
    console.error(`the page as it failed:\n${await current.locator('main').innerText().catch(() => '?')}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
