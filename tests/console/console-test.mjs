// Drives Debian's chromium (headless, through playwright-core) through the web console as a
// user would: signs in with a key id and secret, opens the app and the job the calling test
// records, watches it live, pauses, resumes and stops it, plays its files (the video element's
// time must advance), presses Redeliver on an event and waits for the new attempt to show. Then signs in again in a fresh
// browser context with a token. Run by tests/tests/worker/console.rs, which records the job,
// starts this with the variables below and checks that the callback receiver got the event
// again; the last line printed is a JSON summary for it.
//
//   CONSOLE_BASE_URL  the API (gateway) URL           CONSOLE_APP_ID, CONSOLE_JOB_ID, CONSOLE_JOB_KIND
//   CONSOLE_KEY_ID, CONSOLE_SECRET  the credential    CONSOLE_PLAY  "mp4" or "mp4,hls": what must play
//   CONSOLE_LIVE  "1": the job is recording when this starts; see its publisher in the room
//                 (CONSOLE_ROOM_ID, CONSOLE_USER_ID), watch it live, follow it until it stops
//   CONSOLE_SCREENSHOT  optional: a PNG of the job view is written there
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('CONSOLE_BASE_URL').replace(/\/$/, '');
const appId = env('CONSOLE_APP_ID');
const jobId = env('CONSOLE_JOB_ID');
const kind = env('CONSOLE_JOB_KIND');
const keyId = env('CONSOLE_KEY_ID');
const secret = env('CONSOLE_SECRET');
const play = (process.env.CONSOLE_PLAY ?? 'mp4').split(',').filter(Boolean);
const live = process.env.CONSOLE_LIVE === '1';
const [roomId, userId] = [process.env.CONSOLE_ROOM_ID, process.env.CONSOLE_USER_ID];
const TIMEOUT_MS = 30_000;

// Waits until the player plays, then checks that its time advances by more than a second in
// two; answers the two times.
async function plays(page, what) {
  await page.waitForFunction(() => {
    const video = document.getElementById('player');
    return !video.paused && video.readyState >= 3 && video.currentTime > 0;
  }, null, { timeout: TIMEOUT_MS });
  const first = await page.evaluate(() => document.getElementById('player').currentTime);
  await page.waitForTimeout(2000);
  const second = await page.evaluate(() => document.getElementById('player').currentTime);
  assert.ok(second - first > 1, `${what}: the video's time advanced (${first} s, then ${second} s)`);
  assert.equal(await page.textContent('#player-error'), '', `${what}: the player reported no error`);
  return { first, second };
}

// Headless on a closed network: the flags the machine notes ask for (no background traffic).
const profile = mkdtempSync(join(tmpdir(), 'roomrec-console-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  args: ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic'],
});
const problems = [];
const summary = {};
try {
  const page = browser.pages()[0] || (await browser.newPage());
  page.setDefaultTimeout(TIMEOUT_MS);
  // Any script error, or anything the Content-Security-Policy refused, fails the test.
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Refused to/.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });

  // /console redirects to the page, served under a strict policy.
  const response = await page.goto(`${base}/console`);
  assert.equal(new URL(page.url()).pathname, '/console/index.html');
  const policy = response.headers()['content-security-policy'] || '';
  assert.match(policy, /script-src 'self';/, 'the page is served with script-src \'self\'');
  assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/);

  // Sign in with the key id and secret (HTTP Basic).
  await page.selectOption('#signin-method', 'basic');
  await page.fill('#signin-key-id', keyId);
  await page.fill('#signin-secret', 'not-' + secret);
  await page.click('#signin-submit');
  await page.waitForFunction(() => /401/.test(document.getElementById('signin-error')?.textContent || ''));
  await page.fill('#signin-secret', secret);
  await page.click('#signin-submit');
  await page.click(`#apps a[href="#/apps/${encodeURIComponent(appId)}"]`);
  const kept = await page.evaluate(() => ({
    session: Object.keys(sessionStorage),
    local: Object.keys(localStorage).length,
    cookies: document.cookie,
  }));
  assert.deepEqual(kept, { session: ['roomrec.console.auth'], local: 0, cookies: '' }, 'the credential is in sessionStorage only');

  // The app view shows its rule and callback, and lists the job.
  await page.waitForSelector('#rules dd');
  await page.waitForSelector('#callback dd');
  if (live) {
    // The job's room, with its live roster: the publisher is in it.
    await page.click(`#rooms a[href$="/rooms/${encodeURIComponent(roomId)}"]`);
    await page.waitForFunction((user) => [...document.querySelectorAll('#roster td:first-child')].some((td) => td.textContent === user), userId);
    await page.goBack();
  }
  await page.click(`#jobs tr[data-job-id="${jobId}"] a`);
  await page.waitForSelector('#job-state');

  // While it records: its HLS so far, live through the API's playback route.
  if (live) {
    assert.equal(await page.textContent('#job-state'), 'RUNNING');
    await page.click('#files tr[data-object$=".m3u8"] button.play-hls');
    summary.live = await plays(page, 'the live view');
    // Paused and resumed from the page: the job's view says so each time.
    await page.click('#pause-job');
    await page.waitForFunction(() => document.getElementById('job-paused')?.textContent === 'true');
    await page.waitForTimeout(1000);
    await page.click('#resume-job');
    await page.waitForFunction(() => document.getElementById('job-paused')?.textContent === 'false');
    await page.waitForTimeout(3000);
    // Stopped from the page, which follows the job to its end.
    await page.click('#stop-job');
    await page.waitForFunction(() => document.getElementById('job-state')?.textContent === 'STOPPED', null, { timeout: 90_000 });
    assert.equal(await page.$('#stop-job'), null, 'a stopped job has no Stop button');
  }
  summary.state = await page.textContent('#job-state');

  // Its files play: the video element's time advances.
  const played = {};
  for (const format of play) {
    const button = format === 'hls' ? '#files tr[data-object$=".m3u8"] button.play-hls' : '#files tr[data-object$=".mp4"] button.play-file';
    await page.click(button);
    played[format] = await plays(page, format);
  }
  summary.played = played;

  // The timeline of the file playing (the last one): its entries list the stream's join, and
  // pressing an entry seeks the player there.
  const last = play[play.length - 1] === 'hls' ? '.m3u8' : '.mp4';
  await page.click(`#files tr[data-object$="${last}"] button.show-timeline`);
  const join = `#timeline-entries tr.timeline-entry[data-type="join"]`;
  await page.waitForSelector(join);
  assert.equal(await page.textContent(`${join} td:nth-child(3)`), "the job's stream");
  const seekedFrom = await page.evaluate(() => document.getElementById('player').currentTime);
  await page.click(`${join} button.seek`);
  await page.waitForFunction((t) => document.getElementById('player').currentTime < t - 0.5, seekedFrom);
  const entries = await page.$$eval('#timeline-entries tr.timeline-entry', (rows) => rows.map((r) => r.dataset.type));
  summary.timeline = { entries, seeked_from: seekedFrom };

  if (process.env.CONSOLE_SCREENSHOT) await page.screenshot({ path: process.env.CONSOLE_SCREENSHOT, fullPage: true });

  // Its events, each delivered once (Refresh until the last one is), then the last one
  // redelivered: a new attempt shows in the events table.
  const delivered = () => page.$$eval('#events td.status', (cells) => cells.length > 0 && cells.every((c) => c.textContent === 'DELIVERED'));
  for (let i = 0; !(await delivered()); i += 1) {
    assert.ok(i < 30, 'every event shows as delivered');
    await page.waitForTimeout(1000);
    await page.click('#refresh');
  }
  const row = page.locator('#events tbody tr').last();
  const eventId = await row.getAttribute('data-event-id');
  const before = Number(await row.locator('.attempt-count').textContent());
  await row.locator('button.redeliver').click();
  const selector = `#events tr[data-event-id="${eventId}"] .attempt-count`;
  await page.waitForFunction(([s, n]) => Number(document.querySelector(s)?.textContent) > n, [selector, before], { timeout: TIMEOUT_MS });
  summary.redelivered = { event_id: eventId, attempts_before: before, attempts_after: Number(await page.textContent(selector)) };

  // Signed out, then in with a token issued for the same credential: only the token is kept.
  await page.click('#sign-out');
  await page.waitForSelector('#signin');
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
  await page.selectOption('#signin-method', 'token');
  await page.fill('#signin-key-id', keyId);
  await page.fill('#signin-secret', secret);
  await page.click('#signin-submit');
  await page.waitForSelector(`#apps a[href="#/apps/${encodeURIComponent(appId)}"]`);
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('roomrec.console.auth')));
  assert.equal(stored.kind, 'token');
  assert.ok(!stored.value.includes(secret), 'the secret is not kept with a token');
  summary.token_sign_in = true;
} catch (err) {
  // What the user would have seen, for the failure's report.
  const page = browser.pages()[0];
  const seen = page ? await page.evaluate(() => document.body.innerText).catch(() => '(no page)') : '(no page)';
  console.error(`the console showed:\n${seen}\nat ${page && page.url()}\nproblems: ${JSON.stringify(problems)}`);
  throw err;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
assert.deepEqual(problems, [], 'no script error and nothing refused by the policy');
console.log(JSON.stringify(summary));
