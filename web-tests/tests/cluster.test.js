// Distributed mode: `cafe cluster` (every service its own process on PostgreSQL and NATS
// JetStream, two web replicas behind the gateway). A page open on either replica sees every
// change, whichever replica served the request that made it.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const c = require('../lib/cafe');

const reachable = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});

test('two web replicas: a page on either sees every change', { timeout: 300000 }, async (t) => {
  const infra = (await reachable(5432)) && (await reachable(4222));
  if (!infra) {
    if (process.env.CI) assert.fail('PostgreSQL (5432) and NATS (4222) must run for the distributed test');
    t.skip('PostgreSQL and NATS are not running here: start them to run the distributed test');
    console.error('SKIPPED: the distributed browser test needs PostgreSQL on 5432 and NATS on 4222');
    return;
  }
  const cafe = await c.startCafe({ cluster: true });
  const browser = await c.browser();
  t.after(async () => { await browser.close(); await cafe.stop(); });
  await c.addStaff(cafe, 'bea', 'barista');

  // One barista, signed in through the gateway, with the queue open on each replica.
  const barista = await c.person(browser, cafe);
  await c.signIn(barista.page, 'bea', 'staff-password-1');
  const [a, b] = cafe.webs;
  const onA = barista.page;
  await onA.goto(`${a}/barista`);
  const onB = await barista.context.newPage();
  await onB.goto(`${b}/barista`);
  await c.live(onA);
  await c.live(onB);

  // A customer, through the gateway (either replica), with their orders open.
  const customer = await c.person(browser, cafe);
  await c.signUp(customer.page, c.randomPhone());
  await c.live(customer.page);
  for (let i = 0; i < 2; i++) {
    await customer.page.selectOption('#product', i === 0 ? 'latte' : 'tea');
    await Promise.all([customer.page.waitForNavigation(), customer.page.click('#order button[type=submit]')]);
    const id = Number(new URL(customer.page.url()).searchParams.get('placed'));
    assert.ok(id > 0, customer.page.url());
    const cell = (p) => p.waitForSelector(`#queue td:text-is("${id}")`, { timeout: 5000 });
    await Promise.all([cell(onA), cell(onB)]);
    // Accepted on replica A, seen on replica B and on the customer's page.
    const row = onA.locator('#queue tr').filter({ has: onA.locator(`td:text-is("${id}")`) });
    await Promise.all([onA.waitForNavigation(), row.getByRole('button', { name: `Accept order ${id}` }).click()]);
    await onB.waitForSelector(`#queue tr:has(td:text-is("${id}")) td:text-is("Receipted")`);
    await c.live(customer.page);
    await customer.page.waitForSelector(`#order-${id}-status:has-text("Receipted")`);
    await c.live(onA);
  }
  await c.shot(onB, 'barista-cluster-replica-b-desktop');
});
