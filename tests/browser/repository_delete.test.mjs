// Deleting a whole repository in Chromium, on a berth of its own (the shared
// one's repositories stay for the other files): the repository page's
// "Delete repository" → a confirmation saying what goes → the POST → home,
// the repository gone; then the front page's GC panel shows what the delete
// made reclaimable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { launch, newPage, assertNoErrors, screenshot, startBerth, skopeoPush } from './lib.mjs';

let browser, berth;

/** Pushes `bytes` to `repo` in one POST; its descriptor. */
async function pushBlob(url, repo, bytes, mediaType) {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const resp = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(resp.status, 201, `push blob to ${repo}`);
  return { mediaType, digest, size: bytes.length };
}

/** An image of its own (a random layer) in `repo`, tagged `tag`. */
async function pushOwnImage(url, repo, tag) {
  const config = await pushBlob(url, repo, Buffer.from('{"architecture":"amd64","os":"linux"}'),
    'application/vnd.oci.image.config.v1+json');
  const layer = await pushBlob(url, repo, randomBytes(4096), 'application/vnd.oci.image.layer.v1.tar');
  const manifest = JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer],
  });
  const resp = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  assert.equal(resp.status, 201, `push manifest ${repo}:${tag}`);
}

before(async () => {
  browser = await launch();
  berth = await startBerth();
  await skopeoPush(berth.addr, 'doomed/box', '1.0');
  await skopeoPush(berth.addr, 'doomed/box', 'latest');
  await pushOwnImage(berth.url, 'kept/app', 'v1');
});
after(async () => {
  await browser?.close();
  await berth?.stop();
});

test('a repository is deleted after a confirmation that says what goes', async () => {
  const page = await newPage(browser);
  await page.goto(`${berth.url}/ui/r/doomed/box`);
  await page.getByRole('link', { name: 'Delete repository' }).click();
  await page.waitForURL(/\/ui\/r\/doomed\/box\/-\/delete$/);
  const confirmation = await page.locator('main').innerText();
  assert.match(confirmation, /Delete repository doomed\/box\?/);
  assert.match(confirmation, /2 tags and 1 manifest/);
  assert.match(confirmation, /next garbage collection pass after the grace period \(1h\)/);
  await screenshot(page, 'ui-delete-repository');
  await page.getByRole('button', { name: 'Delete repository' }).click();
  await page.waitForURL(/\/ui\/$/);
  const names = await page.locator('#repositories table tbody tr td:first-child').allInnerTexts();
  assert.deepEqual(names, ['kept/app']);
  const catalog = await (await fetch(`${berth.url}/v2/_catalog`)).json();
  assert.deepEqual(catalog.repositories, ['kept/app']);
  assertNoErrors(page);
});

test('the front page GC panel shows the bytes the delete made reclaimable', async () => {
  const page = await newPage(browser);
  await page.goto(`${berth.url}/ui/`);
  const panel = page.locator('section.gc');
  assert.match(await panel.locator('h2').innerText(), /Garbage collection/);
  const bytes = Number(await page.locator('#gc-reclaimable').getAttribute('data-bytes'));
  assert.ok(bytes > 0, `reclaimable bytes: ${bytes}`);
  assert.match(await page.locator('#gc-reclaimable').innerText(), /\d+(\.\d)? (B|KiB|MiB)/);
  // "none scheduled" until serve runs the background worker.
  assert.match(await page.locator('#gc-next').innerText(), /^(in \d+ \w+|within a minute|running now|none scheduled)$/);
  assert.match(await page.locator('#gc-last').innerText(), /none since berth started|removed/);
  await screenshot(page, 'ui-gc-panel');
  assertNoErrors(page);
});
