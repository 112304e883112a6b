// Accessibility: axe-core (from its npm package, injected into each page) finds no serious
// or critical violation on any page, desktop or phone; and a customer signs up, orders and
// cancels with the keyboard alone.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const c = require('../lib/cafe');

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

async function axe(page, name) {
  await page.addScriptTag({ content: AXE }).catch(async () => {
    // The page's CSP allows only its own scripts: evaluate instead.
    await page.evaluate(AXE);
  });
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${name}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), []);
}

/** Presses Tab until the element with `id` has focus. */
async function tabTo(page, id) {
  for (let i = 0; i < 40; i++) {
    if (await page.evaluate((id) => document.activeElement?.id === id, id)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached #${id}`);
}

test('no serious accessibility violation on any page, and ordering by keyboard alone', { timeout: 180000 }, async (t) => {
  const cafe = await c.startCafe();
  const browser = await c.browser();
  t.after(async () => { await browser.close(); await cafe.stop(); });
  await c.addStaff(cafe, 'bea', 'barista');
  await c.addStaff(cafe, 'rio', 'rider');

  await t.test('the customer orders and cancels by keyboard alone', async () => {
    const { page } = await c.person(browser, cafe);
    await page.goto('/signin');
    await tabTo(page, 'phone');
    const phone = c.randomPhone();
    await page.keyboard.type(phone);
    await page.keyboard.press('Tab');
    await page.keyboard.type('customer-pass-1');
    await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    await tabTo(page, 'product');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('3');
    const product = await page.$eval('#product', (s) => s.value);
    const amount = await page.textContent('#amount');
    assert.notEqual(amount, '₩0', `the amount of 3 ${product} is shown: ${amount}`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Order and pay');
    await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    const id = Number(new URL(page.url()).searchParams.get('placed'));
    assert.ok(id > 0, page.url());
    await page.waitForSelector(`#order-${id}-action button`);
    // Tab onwards to the order's Cancel button.
    let reached = false;
    for (let i = 0; i < 60 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate((id) => document.activeElement?.getAttribute('aria-label') === `Cancel order ${id}`, id);
    }
    assert.ok(reached, 'Tab reaches the Cancel button');
    // The barista accepts it meanwhile: the row changes live, and the focus stays on Cancel.
    await c.live(page);
    const barista = await c.token(cafe, 'bea', 'staff-password-1');
    const drink = await c.until(`order ${id} in the queue`, async () => {
      const q = await c.api(cafe, 'GET', '/orderinfos?size=100', { token: barista });
      return (q.json._embedded?.orderinfos || []).find((d) => d.orderId === id);
    });
    assert.equal((await c.api(cafe, 'PATCH', `/drinks/${drink.id}`, { token: barista, body: { status: 'Receipted' } })).status, 200);
    await page.waitForSelector(`#order-${id}-status:has-text("Receipted")`);
    const focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label'));
    assert.equal(focused, `Cancel order ${id}`, 'a row changed live keeps the keyboard focus');
    await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    assert.match(await page.textContent('#notes'), new RegExp(`Order ${id} is cancelled`));
    await axe(page, 'customer (orders)');
  });

  const pages = [
    ['signin', null, null, '/signin'],
    ['menu, signed out', null, null, '/'],
    ['barista', 'bea', 'staff-password-1', '/barista'],
    ['rider', 'rio', 'staff-password-1', '/rider'],
    ['center', 'rio', 'staff-password-1', '/center'],
    ['manager', 'manager', cafe.managerPassword, '/manager'],
  ];
  for (const phone of [false, true]) {
    await t.test(`axe on every page (${phone ? 'phone' : 'desktop'})`, async () => {
      for (const [name, user, password, where] of pages) {
        const p = await c.person(browser, cafe, { phone });
        if (user) await c.signIn(p.page, user, password, where);
        else await p.page.goto(where);
        await axe(p.page, name);
        await p.context.close();
      }
      const p = await c.person(browser, cafe, { phone });
      await c.signUp(p.page, c.randomPhone());
      await axe(p.page, 'customer');
      await p.page.goto('/barista');
      await axe(p.page, 'forbidden');
      await p.context.close();
    });
  }
});
