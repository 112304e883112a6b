// The API docs at the gateway's /docs: Swagger UI reading the gateway's /openapi.json, every
// public operation listed, with every request that does not go to the cafe itself refused, so
// the page is shown to work with no network. A manager authorizes with a token and tries an
// operation from the page.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const c = require('../lib/cafe');

test('the API docs work offline and try an operation with a token', { timeout: 120000 }, async (t) => {
  const cafe = await c.startCafe();
  const browser = await c.browser();
  t.after(async () => { await browser.close(); await cafe.stop(); });
  const description = await (await fetch(`${cafe.gateway}/openapi.json`)).json();
  const operations = Object.values(description.paths).reduce((n, item) => n + Object.keys(item).length, 0);

  const { context, page } = await c.person(browser, cafe);
  const elsewhere = [];
  const own = new URL(cafe.gateway).host;
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.host === own) return route.continue();
    elsewhere.push(url.href);
    return route.abort();
  });
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));

  await page.goto('/docs/');
  await c.until('every operation listed', async () => (await page.locator('.opblock').count()) === operations);
  assert.deepEqual(elsewhere, [], 'the docs load nothing from elsewhere');
  assert.deepEqual(failed, [], 'every asset the docs load is served by the cafe');
  assert.ok(operations >= 30, `the public API has its operations (${operations})`);
  const title = await page.locator('.information-container .title').textContent();
  assert.match(title, /cafe/);
  await c.shot(page, 'api-docs');

  // Authorize as the manager and try GET /menu and GET /orders from the page.
  const token = await c.token(cafe, 'manager', cafe.managerPassword);
  await page.click('button.authorize');
  await page.fill('.auth-container input[type=text]', token);
  await page.click('.auth-btn-wrapper button.authorize');
  await page.click('button.btn-done');
  const block = page.locator('#operations-orders-getOrders');
  await block.locator('.opblock-summary').click();
  await block.locator('button.try-out__btn').click();
  await block.locator('button.execute').click();
  const status = await c.until('an answer to GET /orders', async () => {
    const cell = block.locator('.live-responses-table tbody .response-col_status');
    return (await cell.count()) > 0 ? (await cell.first().textContent()).trim() : null;
  });
  assert.equal(status, '200', 'GET /orders tried from the docs with the manager\'s token');
  // The one operation, not the whole page.
  await block.screenshot({ path: require('node:path').join(c.ROOT, 'docs', 'screenshots', 'api-docs-tried.png') });
});
