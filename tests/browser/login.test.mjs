// The web UI under auth in Chromium: berth of its own with --htpasswd (users
// written by `htpasswd -B`) and access rules (alice: team-a; puller: pull
// on team-a; admin: everything). The login page, a wrong password, alice's
// view limited to team-a, no delete for a pull-only user (and the POST
// refused), logout; then CORS under auth: a preflight answered without
// credentials, and an authenticated cross-origin fetch from an allowed origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { launch, newPage, screenshot, startBerth, skopeoPush, freePort } from './lib.mjs';

const PASSWORD = 'correct horse battery';
const USERS = ['admin', 'alice', 'bob', 'puller'];

let browser, berth, allowed;

/** A page on its own 127.0.0.1 origin (for the cross-origin fetch). */
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

/** One HTTP request with exactly these headers: status and headers. */
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

const basic = (user) => `Basic ${Buffer.from(`${user}:${PASSWORD}`).toString('base64')}`;

/** Tags of `repo` as the admin sees them through /v2. */
async function tags(repo) {
  const res = await fetch(`${berth.url}/v2/${repo}/tags/list`, { headers: { Authorization: basic('admin') } });
  return (await res.json()).tags ?? [];
}

/** Console errors other than the browser reporting an expected 401/403 load. */
function unexpectedErrors(page) {
  return page.errors.filter((e) => !/status of 40[13]/.test(e));
}

/** Logs in through the form; resolves to the answer of the POST. */
async function logIn(page, user, password) {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Log in' }).click(),
  ]);
  return response;
}

before(async () => {
  const dir = mkdtempSync(join(process.env.T ?? tmpdir(), 'berth-login-'));
  const htpasswd = join(dir, 'htpasswd');
  for (const [i, user] of USERS.entries()) {
    // -B bcrypt (what berth reads), -C 4 to keep the test quick, -i password on stdin.
    const create = i === 0 ? ['-c'] : [];
    execFileSync('htpasswd', [...create, '-B', '-C', '4', '-i', htpasswd, user], { input: PASSWORD, stdio: ['pipe', 'ignore', 'pipe'] });
  }
  allowed = await staticOrigin();
  const config = join(dir, 'berth.toml');
  writeFileSync(config, `htpasswd = ${JSON.stringify(htpasswd)}
cors_allowed_origins = [${JSON.stringify(allowed.origin)}]
cors_allow_credentials = true

[groups]
team-a = ["alice"]
team-b = ["bob"]

[[access]]
who = ["admin"]
repositories = ["*"]
actions = ["*"]

[[access]]
who = ["group:team-a"]
repositories = ["team-a/*"]
actions = ["pull", "push", "delete"]

[[access]]
who = ["group:team-b"]
repositories = ["team-b/*"]
actions = ["pull", "push", "delete"]

[[access]]
who = ["puller"]
repositories = ["team-a/*"]
actions = ["pull"]
`);
  berth = await startBerth({ args: ['--config', config], readyPath: '/healthz' });
  for (const repo of ['team-a/app', 'team-a/tools', 'team-b/app']) {
    await skopeoPush(berth.addr, repo, 'v1', { creds: `admin:${PASSWORD}` });
  }
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await berth?.stop();
  await allowed?.close();
});

test('the login page; a wrong password shows an error; alice sees team-a but not team-b', async () => {
  const page = await newPage(browser);
  // No session: the UI sends the browser to log in, and back afterwards.
  await page.goto(`${berth.url}/ui/r/team-a/app`);
  assert.match(page.url(), /\/ui\/login\?next=%2Fui%2Fr%2Fteam-a%2Fapp$/);
  assert.ok(await page.getByLabel('User name').isVisible());
  assert.ok(await page.getByLabel('Password').isVisible());
  await screenshot(page, 'ui-login');

  const wrong = await logIn(page, 'alice', 'not the password');
  assert.equal(wrong.status(), 401);
  assert.equal(await page.getByRole('alert').innerText(), 'Wrong user name or password.');
  assert.equal(await page.getByLabel('User name').inputValue(), 'alice', 'the name is kept');
  assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password is not');
  await screenshot(page, 'ui-login-wrong-password');

  const ok = await logIn(page, 'alice', PASSWORD);
  assert.equal(ok.status(), 200);
  assert.ok(page.url().endsWith('/ui/r/team-a/app'), page.url());
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'berth_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.ok(!session.value.includes('correct'), 'the cookie does not hold the password');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read it');

  await page.goto(`${berth.url}/ui/`);
  const names = await page.locator('#repositories tbody td:first-child').allInnerTexts();
  assert.deepEqual(names, ['team-a/app', 'team-a/tools']);
  assert.match(await page.locator('.stats').innerText(), /Repositories\s+2/);
  assert.equal(await page.locator('header .user').innerText(), 'alice');
  assert.ok(await page.getByRole('button', { name: 'Log out' }).isVisible());
  await screenshot(page, 'ui-logged-in');
  // Another team's repository is refused, like one that does not exist.
  const refused = await page.goto(`${berth.url}/ui/r/team-b/app`);
  assert.equal(refused.status(), 403);
  assert.equal((await page.goto(`${berth.url}/ui/r/team-b/nothing`)).status(), 403);
  assert.deepEqual(unexpectedErrors(page), []);
});

test('a pull-only user gets no delete button, and a delete POST is refused', async () => {
  const page = await newPage(browser);
  await page.goto(`${berth.url}/ui/login`);
  await logIn(page, 'puller', PASSWORD);
  await page.goto(`${berth.url}/ui/r/team-a/app`);
  assert.deepEqual(await page.locator('#tags tbody td:first-child').allInnerTexts(), ['v1']);
  assert.equal(await page.getByRole('link', { name: 'Delete tag v1' }).count(), 0);
  assert.equal(await page.locator('a[href*="/-/delete/"]').count(), 0);
  // The POST a delete button would send, from berth's own page.
  const status = await page.evaluate(async () => (await fetch('/ui/r/team-a/app/-/delete/v1', { method: 'POST' })).status);
  assert.equal(status, 403);
  const confirm = await page.goto(`${berth.url}/ui/r/team-a/app/-/delete/v1`);
  assert.equal(confirm.status(), 403);
  assert.match(await page.locator('main').innerText(), /You may not delete/);
  assert.deepEqual(await tags('team-a/app'), ['v1'], 'nothing was deleted');

  // alice may delete there: she gets the button.
  const alice = await newPage(browser);
  await alice.goto(`${berth.url}/ui/login`);
  await logIn(alice, 'alice', PASSWORD);
  await alice.goto(`${berth.url}/ui/r/team-a/app`);
  assert.equal(await alice.getByRole('link', { name: 'Delete tag v1' }).count(), 1);
  assert.deepEqual(unexpectedErrors(page), []);
  assert.deepEqual(unexpectedErrors(alice), []);
});

test('logging out ends the session', async () => {
  const page = await newPage(browser);
  await page.goto(`${berth.url}/ui/login`);
  await logIn(page, 'alice', PASSWORD);
  assert.ok(page.url().endsWith('/ui/'), page.url());
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Log out' }).click()]);
  assert.ok(page.url().endsWith('/ui/login'), page.url());
  const cookies = await page.context().cookies();
  assert.equal(cookies.find((c) => c.name === 'berth_session'), undefined);
  await page.goto(`${berth.url}/ui/`);
  assert.ok(page.url().endsWith('/ui/login'), `back to the login page: ${page.url()}`);
  assert.deepEqual(unexpectedErrors(page), []);
});

test('CORS under auth: a preflight needs no credentials, then a cross-origin fetch with them works', async () => {
  const tagsUrl = `${berth.url}/v2/team-a/app/tags/list`;
  const pre = await raw('OPTIONS', tagsUrl, {
    origin: allowed.origin,
    'access-control-request-method': 'GET',
    'access-control-request-headers': 'authorization',
  });
  assert.ok([200, 204].includes(pre.status), `preflight status ${pre.status}`);
  assert.equal(pre.headers['access-control-allow-origin'], allowed.origin);
  assert.equal(pre.headers['access-control-allow-credentials'], 'true');
  assert.equal(pre.headers['www-authenticate'], undefined);

  const page = await newPage(browser);
  await page.goto(`${allowed.origin}/`);
  const result = await page.evaluate(async ({ url, authorization }) => {
    // Without credentials (a credentialed 401 would make Chromium prompt for a login).
    const anonymous = await fetch(url);
    const res = await fetch(url, { credentials: 'include', headers: { Authorization: authorization } });
    const out = {
      anonymous: anonymous.status,
      challenge: anonymous.headers.get('WWW-Authenticate'),
      status: res.status,
      body: await res.json(),
    };
    document.getElementById('out').textContent = JSON.stringify(out, null, 2);
    return out;
  }, { url: tagsUrl, authorization: basic('alice') });
  // Without credentials the browser may read the 401 and its challenge.
  assert.equal(result.anonymous, 401);
  assert.match(result.challenge ?? '', /^Basic realm=/);
  assert.equal(result.status, 200);
  assert.deepEqual(result.body, { name: 'team-a/app', tags: ['v1'] });
  await screenshot(page, 'cors-under-auth');
  assert.deepEqual(unexpectedErrors(page), []);
});
