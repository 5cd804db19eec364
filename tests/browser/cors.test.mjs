// CORS as a browser enforces it: a page served from a second origin that
// berth allows reads the catalog, a tags list and a manifest's digest and
// deletes a tag with fetch(); a page from a third origin, not listed, is
// blocked by Chromium. The preflight and response headers are also checked
// over plain HTTP. berth here is the test's own, started with --cors-origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { launch, newPage, assertNoErrors, screenshot, startBerth, skopeoPush, freePort } from './lib.mjs';

const REPO = 'cors/demo';
const OCI_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let browser, berth, allowed, other;

/** A tiny static site on its own 127.0.0.1 port: one empty page. */
async function staticOrigin() {
  const port = await freePort();
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><head><title>another UI</title>'
      + '<link rel="icon" href="data:,"></head><body><pre id="out"></pre></body></html>');
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

/** One HTTP request with exactly these headers; resolves to status and headers. */
function raw(method, url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const listHas = (value, item) =>
  (value ?? '').split(',').some((v) => v.trim().toLowerCase() === item.toLowerCase());

async function tags() {
  const res = await fetch(`${berth.url}/v2/${REPO}/tags/list`);
  return (await res.json()).tags ?? [];
}

before(async () => {
  allowed = await staticOrigin();
  other = await staticOrigin();
  berth = await startBerth({
    args: ['--cors-origin', allowed.origin],
    env: { BERTH_DELETE_ENABLED: 'true' },
  });
  await skopeoPush(berth.addr, REPO, 'v1');
  await skopeoPush(berth.addr, REPO, 'v2');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await berth?.stop();
  await allowed?.close();
  await other?.close();
});

test('a page on an allowed origin reads the catalog, tags, a digest and deletes a tag', async () => {
  const page = await newPage(browser);
  await page.goto(`${allowed.origin}/`);
  const result = await page.evaluate(async ({ registry, repo, accept }) => {
    const catalog = await (await fetch(`${registry}/v2/_catalog`)).json();
    // Cache-Control is what Joxit's USE_CONTROL_CACHE_HEADER sends: it forces a preflight.
    const tagsResponse = await fetch(`${registry}/v2/${repo}/tags/list`, {
      headers: { 'Cache-Control': 'no-store, no-cache' },
    });
    const tagsBefore = (await tagsResponse.json()).tags;
    const head = await fetch(`${registry}/v2/${repo}/manifests/v2`, { method: 'HEAD', headers: { Accept: accept } });
    const deleted = await fetch(`${registry}/v2/${repo}/manifests/v2`, { method: 'DELETE' });
    const tagsAfter = (await (await fetch(`${registry}/v2/${repo}/tags/list`)).json()).tags;
    const out = {
      catalog: catalog.repositories,
      tagsBefore,
      headStatus: head.status,
      digest: head.headers.get('Docker-Content-Digest'),
      length: head.headers.get('Content-Length'),
      deleteStatus: deleted.status,
      tagsAfter,
    };
    document.getElementById('out').textContent = JSON.stringify(out, null, 2);
    return out;
  }, { registry: berth.url, repo: REPO, accept: OCI_ACCEPT });

  assert.deepEqual(result.catalog, [REPO]);
  assert.deepEqual([...result.tagsBefore].sort(), ['v1', 'v2']);
  assert.equal(result.headStatus, 200);
  assert.match(result.digest ?? '', /^sha256:[0-9a-f]{64}$/);
  assert.ok(Number(result.length) > 0, `Content-Length readable: ${result.length}`);
  assert.equal(result.deleteStatus, 202);
  assert.deepEqual(result.tagsAfter, ['v1']);
  // What the page saw is what the registry holds.
  assert.deepEqual(await tags(), ['v1']);
  const digest = (await raw('HEAD', `${berth.url}/v2/${REPO}/manifests/v1`, { accept: OCI_ACCEPT }))
    .headers['docker-content-digest'];
  assert.equal(result.digest, digest);
  await screenshot(page, 'cors-allowed-origin');
  assertNoErrors(page);
});

test('a page on an origin not listed is blocked by the browser, preflight included', async () => {
  const tagsBefore = await tags();
  assert.ok(tagsBefore.includes('v1'));
  const page = await newPage(browser, { expectConsoleErrors: true });
  await page.goto(`${other.origin}/`);
  const result = await page.evaluate(async ({ registry, repo }) => {
    const attempt = async (path, init) => {
      try {
        const res = await fetch(`${registry}${path}`, init);
        return `read ${res.status}`;
      } catch (err) {
        return `blocked: ${err.name}`;
      }
    };
    const out = {
      catalog: await attempt('/v2/_catalog'),
      tags: await attempt(`/v2/${repo}/tags/list`),
      head: await attempt(`/v2/${repo}/manifests/v1`, { method: 'HEAD' }),
      delete: await attempt(`/v2/${repo}/manifests/v1`, { method: 'DELETE' }),
    };
    document.getElementById('out').textContent = JSON.stringify(out, null, 2);
    return out;
  }, { registry: berth.url, repo: REPO });
  for (const [what, outcome] of Object.entries(result)) {
    assert.equal(outcome, 'blocked: TypeError', what);
  }
  // The DELETE's preflight was refused, so the DELETE itself was never sent.
  assert.deepEqual(await tags(), tagsBefore);
  await screenshot(page, 'cors-other-origin');
});

test('preflight and response headers over plain HTTP', async () => {
  const manifest = `${berth.url}/v2/${REPO}/manifests/v1`;
  const pre = await raw('OPTIONS', manifest, {
    origin: allowed.origin,
    'access-control-request-method': 'DELETE',
    'access-control-request-headers': 'authorization, cache-control',
  });
  assert.ok([200, 204].includes(pre.status), `preflight status ${pre.status}`);
  assert.equal(pre.headers['access-control-allow-origin'], allowed.origin);
  for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    assert.ok(listHas(pre.headers['access-control-allow-methods'], m), m);
  }
  for (const h of ['Authorization', 'Accept', 'Content-Type', 'Content-Range', 'Range', 'Cache-Control']) {
    assert.ok(listHas(pre.headers['access-control-allow-headers'], h), h);
  }
  assert.ok(Number(pre.headers['access-control-max-age']) > 0);
  assert.ok(listHas(pre.headers.vary, 'Origin'));
  assert.equal(pre.headers['access-control-allow-credentials'], undefined);

  const get = await raw('GET', manifest, { origin: allowed.origin, accept: OCI_ACCEPT });
  assert.equal(get.status, 200);
  assert.equal(get.headers['access-control-allow-origin'], allowed.origin);
  for (const h of ['Docker-Content-Digest', 'Content-Length', 'Content-Range', 'Link', 'Location', 'Range', 'WWW-Authenticate']) {
    assert.ok(listHas(get.headers['access-control-expose-headers'], h), h);
  }
  assert.ok(listHas(get.headers.vary, 'Origin'));

  // Not listed: no CORS headers at all, not even on a preflight; still Vary.
  for (const method of ['GET', 'OPTIONS']) {
    const res = await raw(method, manifest, {
      origin: other.origin,
      accept: OCI_ACCEPT,
      'access-control-request-method': 'DELETE',
    });
    assert.equal(res.headers['access-control-allow-origin'], undefined, method);
    assert.equal(res.headers['access-control-allow-methods'], undefined, method);
    assert.ok(listHas(res.headers.vary, 'Origin'), method);
  }
  const none = await raw('GET', manifest, { accept: OCI_ACCEPT });
  assert.equal(none.headers['access-control-allow-origin'], undefined);
  assert.ok(listHas(none.headers.vary, 'Origin'));
});
