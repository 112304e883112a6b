// What a person is shown when things go wrong: a cancel and its compensation moving live,
// a cancel refused after delivery, payment taken down (the busy message with its seconds,
// then ordering works again once it is back), and a service down while the rest of the
// page still works.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const c = require('../lib/cafe');

test('cancelling, refusals and services down, as a customer sees them', { timeout: 180000 }, async (t) => {
  const cafe = await c.startCafe();
  const browser = await c.browser();
  t.after(async () => { await browser.close(); await cafe.stop(); });
  await c.addStaff(cafe, 'bea', 'barista');
  await c.addStaff(cafe, 'rio', 'rider');

  const customer = await c.person(browser, cafe);
  const page = customer.page;
  const phone = c.randomPhone();
  await c.signUp(page, phone);
  await c.live(page);
  const order = async (product, qty) => {
    await page.selectOption('#product', product);
    await page.fill('#qty', String(qty));
    await Promise.all([page.waitForNavigation(), page.click('#order button[type=submit]')]);
  };

  await t.test('a cancel, and its compensation shown live', async () => {
    await order('mocha', 1);
    const id = Number(new URL(page.url()).searchParams.get('placed'));
    await c.live(page);
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: `Cancel order ${id}` }).click()]);
    assert.match(await page.textContent('#notes'), new RegExp(`Order ${id} is cancelled`));
    await c.live(page);
    await page.waitForSelector(`#order-${id}-status:has-text("refunded")`);
    await c.shot(page, 'customer-cancelled-desktop');
  });

  await t.test('a cancel refused once the order is delivered', async () => {
    await order('tea', 1);
    const id = Number(new URL(page.url()).searchParams.get('placed'));
    // This page misses the live updates (its stream is cut), so it still offers Cancel.
    const stale = await c.person(browser, cafe);
    await stale.context.addCookies(await customer.context.cookies());
    await stale.page.route('**/live?**', (r) => r.abort());
    await stale.page.goto('/');
    await stale.page.waitForSelector(`#order-${id}-action button`);
    // Meanwhile the barista makes it and the rider delivers it.
    const barista = await c.token(cafe, 'bea', 'staff-password-1');
    const rider = await c.token(cafe, 'rio', 'staff-password-1');
    const drink = await c.until(`order ${id} in the barista's queue`, async () => {
      const q = await c.api(cafe, 'GET', '/orderinfos?size=100', { token: barista });
      return (q.json._embedded?.orderinfos || []).find((d) => d.orderId === id);
    });
    assert.equal((await c.api(cafe, 'PATCH', `/drinks/${drink.id}`, { token: barista, body: { status: 'Made' } })).status, 200);
    const delivery = await c.until(`the delivery of order ${id}`, async () => {
      const d = await c.api(cafe, 'GET', `/deliveries/search/findByOrderId?orderId=${id}`, { token: rider });
      return d.status === 200 ? (d.json._embedded ? Object.values(d.json._embedded)[0][0] : d.json) : null;
    });
    assert.equal((await c.api(cafe, 'PATCH', `/deliveries/${delivery.id}`, { token: rider, body: { status: 'Delivered' } })).status, 200);
    await page.waitForSelector(`#order-${id}-status:has-text("Delivered")`);
    assert.equal(await page.locator(`#order-${id}-action button`).count(), 0, 'the live page no longer offers Cancel');
    await Promise.all([stale.page.waitForNavigation(), stale.page.click(`#order-${id}-action button`)]);
    assert.match(await stale.page.textContent('.note.problem'), /cannot be cancelled: it has already been delivered/);
    await c.shot(stale.page, 'customer-cancel-refused-desktop');
    await stale.context.close();
  });

  await t.test('payment down: the busy message with its seconds, then ordering works again', async () => {
    await c.admin(cafe, 'payment', 'stop');
    await order('latte', 1);
    const message = await page.textContent('.note.problem');
    assert.match(message, /Payment is busy.*try again in \d+ s/);
    await c.shot(page, 'customer-payment-busy-desktop');
    await c.admin(cafe, 'payment', 'start');
    // The breaker tries payment again after it has been open a while: keep ordering until then.
    await c.until('an order placed once payment is back', async () => {
      await order('latte', 1);
      return new URL(page.url()).searchParams.has('placed');
    }, 60000);
  });

  await t.test('a service down: a clear message, and the rest of the page still works', async () => {
    await c.admin(cafe, 'customercenter', 'stop');
    await page.goto('/');
    assert.match(await page.textContent('#live'), /Your orders cannot be shown right now/);
    assert.ok(await page.locator('.menu tbody tr').count() > 0, 'the menu is still there');
    await order('tea', 1);
    assert.ok(new URL(page.url()).searchParams.has('placed'), 'ordering still works');
    await c.admin(cafe, 'customercenter', 'start');
  });
});
