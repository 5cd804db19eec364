// Time to a painted page in Chromium: loads URL ROUNDS times, each in a fresh
// browser context (no cache), and prints one JSON line with the medians of
// first-contentful-paint and of the navigation's time to first byte (ms).
//   node bench/ui-paint.mjs URL [ROUNDS]
// Run by bench/ui.sh (needs tests/browser's npm ci).
import { launch } from '../tests/browser/lib.mjs';

const [url, roundsArg = '20'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node bench/ui-paint.mjs URL [ROUNDS]');
  process.exit(2);
}
const rounds = Number(roundsArg);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const browser = await launch();
const fcp = [];
const ttfb = [];
try {
  for (let i = 0; i < rounds; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const response = await page.goto(url, { waitUntil: 'load' });
    if (!response || response.status() !== 200) {
      throw new Error(`${url}: status ${response?.status()}`);
    }
    const times = await page.evaluate(() => new Promise((resolve) => {
      const nav = performance.getEntriesByType('navigation')[0];
      const done = (paint) => resolve({ fcp: paint.startTime, ttfb: nav.responseStart - nav.startTime });
      const found = performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint');
      if (found) return done(found);
      new PerformanceObserver((list, observer) => {
        const entry = list.getEntries().find((e) => e.name === 'first-contentful-paint');
        if (entry) { observer.disconnect(); done(entry); }
      }).observe({ type: 'paint', buffered: true });
    }));
    fcp.push(times.fcp);
    ttfb.push(times.ttfb);
    await context.close();
  }
} finally {
  await browser.close();
}
const round1 = (x) => Math.round(x * 10) / 10;
console.log(JSON.stringify({ url, rounds, fcp_ms: round1(median(fcp)), ttfb_ms: round1(median(ttfb)) }));
