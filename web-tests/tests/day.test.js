// The whole day in one test, several people at once, each in their own browser context: a
// customer registers and orders; the barista's open page shows it within a second without a
// reload; Accept, Made; the rider's page shows the delivery live; Delivered; the customer's
// page shows each stage live. The delivery center's page and the manager's chart move with
// it. Screenshots of every page, desktop and phone, go to docs/screenshots/.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const c = require('../lib/cafe');

test('a whole day at the cafe, live on every page', { timeout: 180000 }, async (t) => {
  const cafe = await c.startCafe();
  const browser = await c.browser();
  t.after(async () => { await browser.close(); await cafe.stop(); });

  await c.addStaff(cafe, 'bea', 'barista');
  await c.addStaff(cafe, 'rio', 'rider');

  // The manager adds a staff account with the dashboard's form.
  const manager = await c.person(browser, cafe);
  await c.signIn(manager.page, 'manager', cafe.managerPassword);
  assert.match(manager.page.url(), /\/manager$/);
  await manager.page.fill('#staff-name', 'cleo');
  await manager.page.fill('#staff-password', 'center-password-1');
  await manager.page.selectOption('#staff-role', 'rider');
  await Promise.all([manager.page.waitForNavigation(), manager.page.click('form[action="/manager/staff"] button')]);
  await manager.page.waitForSelector('.staff td:text-is("cleo")');
  await c.live(manager.page);
  const ordersOnChart = async () => Number(await manager.page.getAttribute('#chart', 'data-orders'));
  const before = await ordersOnChart();

  const barista = await c.person(browser, cafe);
  await c.signIn(barista.page, 'bea', 'staff-password-1');
  assert.match(barista.page.url(), /\/barista$/);
  await c.live(barista.page);

  const rider = await c.person(browser, cafe);
  await c.signIn(rider.page, 'rio', 'staff-password-1');
  assert.match(rider.page.url(), /\/rider$/);
  await c.live(rider.page);

  const center = await c.person(browser, cafe);
  await c.signIn(center.page, 'cleo', 'center-password-1', '/center');
  assert.match(center.page.url(), /\/center$/);
  await c.live(center.page);

  // A customer registers and orders two lattes: the amount is shown before ordering.
  const customer = await c.person(browser, cafe);
  const phone = c.randomPhone();
  await c.signUp(customer.page, phone);
  const page = customer.page;
  await page.selectOption('#product', 'latte');
  await page.fill('#qty', '2');
  assert.equal(await page.textContent('#amount'), '₩9,000');
  await c.live(page);
  await c.shot(page, 'customer-desktop');
  await Promise.all([page.waitForNavigation(), page.click('#order button[type=submit]')]);
  const placedAt = Date.now();
  const orderId = Number(new URL(page.url()).searchParams.get('placed'));
  assert.ok(orderId > 0, page.url());
  await page.waitForSelector(`#order-${orderId}`);

  // The barista's page, open all along, shows it within a second.
  const row = barista.page.locator('#queue tr', { hasText: `latte × 2` }).filter({ has: barista.page.locator(`td:text-is("${orderId}")`) });
  await row.waitFor({ timeout: 1000 });
  const shownAfter = Date.now() - placedAt;
  console.log(`barista saw order ${orderId} ${shownAfter} ms after it was placed`);
  assert.ok(shownAfter <= 1000, `${shownAfter} ms`);
  await c.shot(barista.page, 'barista-desktop');

  const status = (text) => page.waitForSelector(`#order-${orderId}-status:has-text("${text}")`);
  await Promise.all([barista.page.waitForNavigation(), row.getByRole('button', { name: `Accept order ${orderId}` }).click()]);
  await status('Receipted');
  const after = barista.page.locator('#queue tr').filter({ has: barista.page.locator(`td:text-is("${orderId}")`) });
  await Promise.all([barista.page.waitForNavigation(), after.getByRole('button', { name: `Order ${orderId} is made` }).click()]);
  await status('Made').catch(() => {}); // may pass straight on to Delivery Started
  await status('Delivery Started');
  await barista.page.waitForSelector(`#queue td:text-is("${orderId}")`, { state: 'detached' });

  // The rider's page shows the delivery live; the center's page moves with it.
  const delivery = rider.page.locator(`#delivery-order-${orderId}`);
  await delivery.waitFor();
  await c.shot(rider.page, 'rider-desktop');
  await center.page.waitForSelector(`#center-${orderId}-status:has-text("Delivery Started")`);
  await Promise.all([rider.page.waitForNavigation(), delivery.getByRole('button', { name: `Order ${orderId} is delivered` }).click()]);
  await status('Delivered');
  await center.page.waitForSelector(`#center-${orderId}-status:has-text("Delivered")`);
  await c.shot(center.page, 'center-desktop');
  await c.shot(page, 'customer-orders-desktop');

  // The manager's chart moved with the order, without a reload.
  await manager.page.waitForFunction((n) => Number(document.getElementById('chart').dataset.orders) > n, before);
  assert.ok((await ordersOnChart()) >= before + 1);
  await manager.page.waitForSelector('#svc-payment .up');
  await c.shot(manager.page, 'manager-desktop');

  // Every page on a phone.
  const signin = await c.person(browser, cafe, { phone: true });
  await signin.page.goto('/signin');
  await c.shot(signin.page, 'signin-phone');
  const shots = [
    ['customer', phone, 'customer-pass-1', '/'],
    ['barista', 'bea', 'staff-password-1', '/barista'],
    ['rider', 'rio', 'staff-password-1', '/rider'],
    ['center', 'cleo', 'center-password-1', '/center'],
    ['manager', 'manager', cafe.managerPassword, '/manager'],
  ];
  for (const [name, user, password, where] of shots) {
    const p = await c.person(browser, cafe, { phone: true });
    await c.signIn(p.page, user, password, where);
    await c.live(p.page);
    const overflow = await p.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} is wider than the phone by ${overflow} px`);
    await c.shot(p.page, `${name}-phone`);
    await p.context.close();
  }
  const desktop = await c.person(browser, cafe);
  await desktop.page.goto('/signin');
  await c.shot(desktop.page, 'signin-desktop');
});
