// The web UI's pages in Chromium against the seeded berth (see seed.sh):
// list and filter, tags newest first, an image's layers and history, an
// index's platforms, a layer's files, deleting a tag, a phone viewport.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, assertNoErrors, screenshot, PHONE, BERTH_URL } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The texts of a table's body rows' first cells. */
async function firstCells(page, table) {
  return page.locator(`${table} tbody tr:visible td:first-child`).allInnerTexts();
}

test('the front page lists repositories and filters them as you type', async () => {
  const page = await newPage(browser);
  const response = await page.goto(`${BERTH_URL}/`);
  assert.equal(response.status(), 200);
  assert.ok(page.url().endsWith('/ui/'), page.url());
  const names = await firstCells(page, '#repositories table');
  for (const repo of ['demo/app', 'demo/busybox', 'demo/multi']) assert.ok(names.includes(repo), `${repo} in ${names}`);
  assert.match(await page.locator('.stats').innerText(), /Saved by sharing/);
  await screenshot(page, 'ui-repositories');
  await page.getByLabel('Filter repositories').pressSequentially('mul');
  await page.waitForFunction(() => !document.querySelector('#repositories').textContent.includes('demo/app'));
  assert.deepEqual(await firstCells(page, '#repositories table'), ['demo/multi']);
  assert.ok(page.url().includes('q=mul'), page.url());
  assertNoErrors(page);
});

test('a repository shows its tags newest first with copy buttons', async () => {
  const page = await newPage(browser);
  await page.goto(`${BERTH_URL}/ui/r/demo/app`);
  assert.deepEqual(await firstCells(page, '#tags'), ['v2', 'v1']);
  const host = new URL(BERTH_URL).host;
  assert.match(await page.locator('.cmds').innerText(), new RegExp(`docker pull ${host}/demo/app:v2`));
  assert.ok(await page.getByRole('button', { name: 'Copy docker pull command for v2' }).isVisible());
  await screenshot(page, 'ui-repository');
  assertNoErrors(page);
});

test('an image shows its layers, config and history', async () => {
  const page = await newPage(browser);
  await page.goto(`${BERTH_URL}/ui/r/demo/app/-/m/v2`);
  assert.equal(await page.locator('table[aria-labelledby=layers-title] tbody tr').count(), 3);
  const history = await page.locator('#history').innerText();
  assert.match(history, /COPY app\/ \/app\//);
  assert.equal(await page.locator('#history tr.empty').count(), 1);
  // The step that ran `rm` made layer 3, and links to it.
  const step = page.locator('#history tr', { hasText: 'RUN rm' });
  assert.equal(await step.getByRole('link').innerText(), 'layer 3');
  const config = await page.locator('dl.kv').nth(1).innerText();
  for (const text of ['/bin/sh -c', 'GREETING=hello', '8080/tcp', '/app', '1000:1000']) assert.ok(config.includes(text), `${text} in ${config}`);
  assert.match(await page.locator('#referrers').innerText(), /application\/spdx\+json/);
  await screenshot(page, 'ui-image');
  assertNoErrors(page);
});

test('an index lists its platforms, each linking to its manifest', async () => {
  const page = await newPage(browser);
  await page.goto(`${BERTH_URL}/ui/r/demo/multi/-/m/latest`);
  assert.deepEqual(await firstCells(page, '#platforms'), ['linux/amd64', 'linux/arm64']);
  await screenshot(page, 'ui-index');
  await page.getByRole('link', { name: 'linux/arm64' }).click();
  await page.waitForURL(/\/-\/m\/sha256:/);
  assert.match(await page.locator('dl.kv').nth(1).innerText(), /linux\/arm64/);
  assertNoErrors(page);
});

test('a layer lists the files that went into it, and the image its merged tree', async () => {
  const page = await newPage(browser);
  await page.goto(`${BERTH_URL}/ui/r/demo/app/-/m/v2`);
  await page.getByRole('link', { name: 'Files in layer 2' }).click();
  await page.waitForURL(/\/-\/layer\/sha256:/);
  const files = await page.locator('#files').innerText();
  for (const text of ['app/hello.txt', 'hello-link', 'hello-hard', 'file-with-a-long-name.txt', '-rwxr-xr-x']) {
    assert.ok(files.includes(text), `${text} in ${files}`);
  }
  await screenshot(page, 'ui-layer');
  await page.getByLabel('Filter paths').fill('long-name');
  assert.equal(await page.locator('#files tbody tr:visible').count(), 1);
  await page.goto(`${BERTH_URL}/ui/r/demo/app/-/m/v2`);
  await page.getByRole('link', { name: 'Files in layer 3' }).click();
  assert.ok((await page.locator('#files tr.deleted').allInnerTexts()).some((t) => t.includes('etc/mark')));
  await page.goto(`${BERTH_URL}/ui/r/demo/app/-/m/v2/files`);
  const tree = await page.locator('#files').innerText();
  assert.ok(tree.includes('app/version') && !tree.includes('etc/mark'), tree);
  await screenshot(page, 'ui-files');
  assertNoErrors(page);
});

test('deleting a tag asks first, then it is gone from the page and from /v2', async () => {
  const page = await newPage(browser);
  await page.goto(`${BERTH_URL}/ui/r/demo/busybox`);
  await page.getByRole('link', { name: 'Delete tag 1.0' }).click();
  const dialog = page.locator('dialog#confirm');
  assert.ok(await dialog.isVisible());
  await screenshot(page, 'ui-delete-dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.ok(!(await dialog.isVisible()));
  assert.ok((await firstCells(page, '#tags')).includes('1.0'));
  await page.getByRole('link', { name: 'Delete tag 1.0' }).click();
  await Promise.all([page.waitForNavigation(), dialog.getByRole('button', { name: 'Delete' }).click()]);
  assert.deepEqual(await firstCells(page, '#tags'), ['latest']);
  const tags = await (await fetch(`${BERTH_URL}/v2/demo/busybox/tags/list`)).json();
  assert.deepEqual(tags.tags, ['latest']);
  assertNoErrors(page);
});

test('pages fit a phone and are reachable by keyboard', async () => {
  const page = await newPage(browser, { viewport: PHONE });
  const pages = [['ui-phone-repositories', '/ui/'], ['ui-phone-repository', '/ui/r/demo/app'],
    ['ui-phone-image', '/ui/r/demo/app/-/m/v2'], ['ui-phone-files', '/ui/r/demo/app/-/m/v2/files']];
  for (const [name, path] of pages) {
    await page.goto(`${BERTH_URL}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the phone`);
    await screenshot(page, name);
  }
  await page.goto(`${BERTH_URL}/ui/`);
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Filter repositories');
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, a')]
    .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim())).length);
  assert.equal(unnamed, 0);
  assertNoErrors(page);
});

test('pages follow the system dark setting', async () => {
  const page = await newPage(browser);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${BERTH_URL}/ui/r/demo/app/-/m/v2`);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, 'rgb(13, 17, 23)');
  await screenshot(page, 'ui-image-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)');
  assertNoErrors(page);
});
