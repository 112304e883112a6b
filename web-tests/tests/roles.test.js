// Who may open what: a customer cannot open the barista's page, a barista cannot open the
// manager's, a stranger is sent to sign in and then back; an ended session goes back to
// sign-in and then to where the person was; a form posted from another origin is refused;
// the session cookie is Secure, HttpOnly and SameSite, and never in the page or the URL.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const c = require('../lib/cafe');

test('roles, sessions and forms from elsewhere', { timeout: 120000 }, async (t) => {
  const cafe = await c.startCafe();
  const browser = await c.browser();
  t.after(async () => { await browser.close(); await cafe.stop(); });
  await c.addStaff(cafe, 'bea', 'barista');

  const customer = await c.person(browser, cafe);
  const phone = c.randomPhone();
  await c.signUp(customer.page, phone);

  await t.test('the session cookie is Secure, HttpOnly and SameSite, and secret', async () => {
    const cookie = (await customer.context.cookies()).find((k) => k.name === 'cafe_session');
    assert.ok(cookie, 'Chromium keeps a Secure cookie from http://127.0.0.1');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(!(await customer.page.content()).includes(cookie.value), 'the token is not in the page');
    assert.ok(!customer.page.url().includes(cookie.value), 'nor in the URL');
    assert.equal(await customer.page.evaluate(() => document.cookie), '', 'scripts cannot read it');
  });

  await t.test('a customer cannot open the barista page, a barista not the manager page', async () => {
    const r = await customer.page.goto('/barista');
    assert.equal(r.status(), 403);
    assert.match(await customer.page.textContent('main'), /This page is for barista and manager accounts/);
    await c.shot(customer.page, 'forbidden-desktop');
    const barista = await c.person(browser, cafe);
    await c.signIn(barista.page, 'bea', 'staff-password-1');
    const m = await barista.page.goto('/manager');
    assert.equal(m.status(), 403);
    const live = await barista.page.goto('/live?page=manager');
    assert.equal(live.status(), 403, "nor the manager page's live stream");
    await barista.context.close();
  });

  await t.test('a stranger signs in first, then lands where they were going', async () => {
    const stranger = await c.person(browser, cafe);
    await stranger.page.goto('/barista');
    assert.match(stranger.page.url(), /\/signin\?next=%2Fbarista/);
    await stranger.page.fill('#username', 'bea');
    await stranger.page.fill('#password', 'staff-password-1');
    await Promise.all([stranger.page.waitForNavigation(), stranger.page.click('form[action="/signin"] button')]);
    assert.match(stranger.page.url(), /\/barista$/);
    await stranger.context.close();
  });

  await t.test('an ended session goes to sign-in, then back to the page', async () => {
    const ended = await c.person(browser, cafe);
    const url = new URL(cafe.gateway);
    await ended.context.addCookies([{ name: 'cafe_session', value: 'eyJhbGciOiJFZERTQSJ9.eyJleHAiOjF9.c2ln', domain: url.hostname, path: '/', httpOnly: true, secure: true, sameSite: 'Strict' }]);
    await ended.page.goto('/barista');
    assert.match(ended.page.url(), /\/signin\?next=%2Fbarista&expired=1/);
    assert.match(await ended.page.textContent('.note.problem'), /Your session has ended/);
    await c.shot(ended.page, 'signin-expired-desktop');
    await ended.page.fill('#username', 'bea');
    await ended.page.fill('#password', 'staff-password-1');
    await Promise.all([ended.page.waitForNavigation(), ended.page.click('form[action="/signin"] button')]);
    assert.match(ended.page.url(), /\/barista$/);
    await ended.context.close();
  });

  await t.test('a form posted from another origin is refused and orders nothing', async () => {
    // Another site on the same machine (another port: same site, other origin) whose page
    // posts an order to the cafe as soon as it is opened, with the customer's cookie.
    const evil = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<!doctype html><form id=f method=post action="${cafe.gateway}/order">
        <input name=product value=mocha><input name=qty value=100><input name=csrf value=guess></form>
        <script>document.getElementById('f').submit()</script>`);
    });
    await new Promise((r) => evil.listen(0, '127.0.0.1', r));
    t.after(() => evil.close());
    const nav = customer.page.waitForNavigation({ url: `${cafe.gateway}/order` });
    await customer.page.goto(`http://127.0.0.1:${evil.address().port}/`);
    const res = await nav;
    assert.equal(res.status(), 403);
    assert.match(await customer.page.textContent('main'), /sent from another site/);
    const token = await c.token(cafe, phone, 'customer-pass-1');
    const orders = await c.api(cafe, 'GET', '/orders', { token });
    assert.equal(orders.json.page.totalElements, 0, 'no order was placed');
  });

  await t.test('a form without the session token is refused', async () => {
    const res = await customer.page.evaluate(async () => {
      const r = await fetch('/order', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'product=tea&qty=1&csrf=wrong' });
      return r.status;
    });
    assert.equal(res, 403);
  });

  await t.test('signing out ends the session', async () => {
    await customer.page.goto('/');
    await Promise.all([customer.page.waitForNavigation(), customer.page.click('form.signout button')]);
    const cookie = (await customer.context.cookies()).find((k) => k.name === 'cafe_session');
    assert.ok(!cookie, 'the cookie is gone');
    await customer.page.goto('/barista');
    assert.match(customer.page.url(), /\/signin/);
  });
});
