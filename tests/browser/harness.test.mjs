// The harness itself: Chromium starts, reaches the seeded berth, and a page
// error is caught. If this fails, every other browser test is suspect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { launch, newPage, assertNoErrors, screenshot, BERTH_URL, SEED } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('chromium reads the seeded catalog from berth', async () => {
  const page = await newPage(browser);
  const response = await page.goto(`${BERTH_URL}/v2/_catalog`);
  assert.equal(response.status(), 200);
  const catalog = JSON.parse(await page.locator('body').innerText());
  for (const repo of ['demo/app', 'demo/busybox', 'demo/multi']) {
    assert.ok(catalog.repositories.includes(repo), `${repo} in ${catalog.repositories}`);
  }
  assert.ok(existsSync(await screenshot(page, 'harness-catalog')));
  assertNoErrors(page);
});

test('newPage collects page errors so tests can fail on them', async () => {
  const page = await newPage(browser);
  await page.setContent('<script>throw new Error("boom")</script>');
  assert.throws(() => assertNoErrors(page), /boom/);
});

test('the seed holds what the page tests rely on', async () => {
  const tags = await (await fetch(`${BERTH_URL}/v2/demo/app/tags/list`)).json();
  assert.deepEqual([...tags.tags].sort(), ['v1', 'v2']);
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
  const app = await (await fetch(`${BERTH_URL}/v2/demo/app/manifests/v2`, { headers: { accept } })).json();
  assert.equal(app.layers.length, 3);
  assert.ok(app.layers[2].mediaType.endsWith('+zstd'));
  const index = await (await fetch(`${BERTH_URL}/v2/demo/multi/manifests/latest`, { headers: { accept } })).json();
  assert.deepEqual(index.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
  const referrers = await (await fetch(`${BERTH_URL}/v2/demo/app/referrers/${SEED.appDigest}`)).json();
  assert.deepEqual(referrers.manifests.map((m) => m.digest), [SEED.sbomDigest]);
});
