// Helpers for the browser tests (run them through tests/browser/run.sh, which
// starts berth, seeds it and sets the environment read here).
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The seeded berth, e.g. `http://127.0.0.1:41234` (no trailing slash). */
export const BERTH_URL = (process.env.BERTH_URL ?? 'http://127.0.0.1:5000').replace(/\/$/, '');
/** Where screenshot() writes; README images are picked from here. */
export const SCREENSHOT_DIR =
  process.env.SCREENSHOT_DIR ?? join(process.env.T ?? tmpdir(), 'screenshots');
/** What run.sh pushed (see seed.sh). */
export const SEED = {
  appDigest: process.env.SEED_APP_DIGEST,
  sbomDigest: process.env.SEED_SBOM_DIGEST,
  busyboxLayout: process.env.BERTH_TEST_LAYOUT,
};

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's headless Chromium; close it in an `after` hook. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

/**
 * A page in a fresh context. Console errors and uncaught page errors are
 * collected in `page.errors`; `assertNoErrors(page)` fails the test on them.
 * Pass `expectConsoleErrors: true` where the browser is meant to complain
 * (e.g. a CORS refusal).
 */
export async function newPage(browser, { viewport = { width: 1280, height: 800 }, expectConsoleErrors = false } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  if (!expectConsoleErrors) {
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const where = msg.location()?.url ?? '';
      // Chromium asks for /favicon.ico by itself on pages without an icon
      // link (raw JSON, say); that 404 is not the page's error.
      if (where.endsWith('/favicon.ico')) return;
      page.errors.push(`console: ${msg.text()} (${where})`);
    });
  }
  page.on('pageerror', (err) => page.errors.push(`pageerror: ${err.message}`));
  return page;
}

/** Throws when the page logged a console error or threw. */
export function assertNoErrors(page) {
  if (page.errors.length > 0) {
    throw new Error(`the page reported errors:\n${page.errors.join('\n')}`);
  }
}

/** A phone-sized viewport (Pixel 7-ish). */
export const PHONE = { width: 412, height: 915 };

/** Full-page PNG into SCREENSHOT_DIR as NAME.png; returns its path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A berth of the test's own (BERTH_BIN) on a free 127.0.0.1 port with a fresh
 * data dir and extra `serve` arguments/env; resolves to `{ url, addr, stop }`.
 * Use it when a test needs a configuration the shared berth does not have.
 * `readyPath` answers 200 once berth is up (`/healthz` under auth, where
 * `/v2/` wants a login).
 */
export async function startBerth({ args = [], env = {}, readyPath = '/v2/' } = {}) {
  const bin = process.env.BERTH_BIN;
  if (!bin) throw new Error('BERTH_BIN is not set (run through tests/browser/run.sh)');
  const dataDir = mkdtempSync(join(process.env.T ?? tmpdir(), 'berth-browser-'));
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const child = spawn(bin, ['serve', '--addr', addr, '--data-dir', join(dataDir, 'data'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const url = `http://${addr}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`berth exited ${child.exitCode}:\n${log}`);
    try {
      if ((await fetch(`${url}${readyPath}`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`berth did not answer on ${url}${readyPath} within 30 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
  return { url, addr, stop, log: () => log };
}

/**
 * Push the seeded busybox layout to `addr/repo:tag` with skopeo (a real
 * client); `creds` ("user:password") when berth wants a login.
 */
export function skopeoPush(addr, repo, tag, { creds } = {}) {
  if (!SEED.busyboxLayout) throw new Error('BERTH_TEST_LAYOUT is not set (run through tests/browser/run.sh)');
  return new Promise((resolve, reject) => {
    const login = creds ? [`--dest-creds=${creds}`] : [];
    const child = spawn('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', ...login,
      `oci:${SEED.busyboxLayout}:latest`, `docker://${addr}/${repo}:${tag}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => { err += c; });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`skopeo exited ${code}: ${err}`))));
  });
}
