// Starts the real cafe binary (`cafe up`, or `cafe cluster`) on free ports with auth on, and
// gives the tests what they need: its URLs, the manager's password, API calls with a token,
// the admin switch, and a browser (Debian's Chromium, never a downloaded one).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const SHOTS = path.join(ROOT, 'docs', 'screenshots');

function binary() {
  const target = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
  const candidates = [process.env.CAFE_BIN, path.join(target, 'release', 'cafe'), path.join(target, 'debug', 'cafe')];
  const found = candidates.filter(Boolean).filter((p) => fs.existsSync(p));
  if (found.length === 0) throw new Error(`no cafe binary: build it first (cargo build), looked in ${candidates.join(', ')}`);
  // The newest build.
  return found.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port P with P..P+count free. */
async function freeRange(count) {
  for (let i = 0; i < 500; i++) {
    const base = 20000 + Math.floor(Math.random() * 10000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free port range');
}

/** Starts `cafe up` (or `cafe cluster` with { cluster: true }) and waits for its ready line. */
async function startCafe(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cafe-web-'));
  const base = await freeRange(opts.cluster ? 18 : 10);
  const args = opts.cluster
    ? ['cluster', '--port', String(base), '--namespace', `web${process.pid}${Date.now() % 100000}`, '--data-dir', path.join(dir, 'data'), '--log-dir', path.join(dir, 'logs'), '--auth', 'on']
    : ['up', '--port', String(base), '--data-dir', path.join(dir, 'data'), '--log-dir', path.join(dir, 'logs'), '--auth', 'on'];
  const child = spawn(binary(), [...args, ...(opts.flags || [])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let output = '';
  const ready = opts.cluster ? 'cafe cluster:' : 'cafe up:';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the cafe did not start in time:\n${output}`)), opts.cluster ? 120000 : 30000);
    const onData = (d) => {
      output += d.toString();
      if (output.includes(ready)) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => { output += d.toString(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the cafe exited (${code}):\n${output}`)); });
  });
  const line = output.split('\n').find((l) => l.startsWith(ready));
  const field = (name) => (line.match(new RegExp(`${name}=(\\S+)`)) || [])[1];
  const cafe = {
    dir,
    child,
    base,
    gateway: field('gateway'),
    admin: field('admin'),
    managerPassword: fs.readFileSync(path.join(dir, 'data', 'manager-password'), 'utf8').trim(),
    webs: opts.cluster ? [`http://127.0.0.1:${base + 8}`, `http://127.0.0.1:${base + 16}`] : [field('web')],
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => { const t = setTimeout(() => { child.kill('SIGKILL'); r(); }, 30000); child.once('exit', () => { clearTimeout(t); r(); }); });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return cafe;
}

/** A call to the public API through the gateway. */
async function api(cafe, method, p, { token, body } = {}) {
  const res = await fetch(cafe.gateway + p, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, headers: res.headers };
}

async function token(cafe, username, password) {
  const r = await api(cafe, 'POST', '/auth/token', { body: { username, password } });
  if (r.status !== 200) throw new Error(`no token for ${username}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.access_token;
}

async function addStaff(cafe, username, role, password = 'staff-password-1') {
  const manager = await token(cafe, 'manager', cafe.managerPassword);
  const r = await api(cafe, 'POST', '/auth/users', { token: manager, body: { username, password, role } });
  if (r.status !== 201) throw new Error(`cannot add ${username}: ${r.status} ${JSON.stringify(r.json)}`);
  return { username, password };
}

/** POST /admin/services/{name}/{action} with a manager's token (127.0.0.1 only). */
async function admin(cafe, service, action) {
  const manager = await token(cafe, 'manager', cafe.managerPassword);
  const res = await fetch(`${cafe.admin}/admin/services/${service}/${action}`, { method: 'POST', headers: { Authorization: `Bearer ${manager}` } });
  if (res.status !== 204) throw new Error(`admin ${service} ${action}: ${res.status} ${await res.text()}`);
}

async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-sandbox'],
  });
}

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

/** A new browser context (a person), desktop or phone sized. */
async function person(b, cafe, { phone = false } = {}) {
  const context = await b.newContext({ viewport: phone ? PHONE : DESKTOP, baseURL: cafe.gateway, deviceScaleFactor: 1, hasTouch: phone, isMobile: phone });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  return { context, page };
}

async function signIn(page, username, password, next = '/') {
  await page.goto(`/signin?next=${encodeURIComponent(next)}`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/signin"] button')]);
}

async function signUp(page, phoneNumber, password = 'customer-pass-1') {
  await page.goto('/signin');
  await page.fill('#phone', phoneNumber);
  await page.fill('#new-password', password);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/signup"] button')]);
}

/** Waits until the page's live stream is open. */
async function live(page) {
  await page.waitForFunction(() => document.body.dataset.liveReady === 'true');
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/**
 * Asks `check` every 50 ms until it gives something truthy, which it returns; fails naming
 * `what` after `ms` (30 s: the machine may be busy, a fast one does not wait).
 */
async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function randomPhone() {
  return '010' + String(Math.floor(10000000 + Math.random() * 89999999));
}

module.exports = { startCafe, api, token, addStaff, admin, browser, person, signIn, signUp, live, shot, until, randomPhone, DESKTOP, PHONE, ROOT };
