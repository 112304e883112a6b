// Figures for docs/BENCHMARKS.md: each page's weight (raw and gzip) and server render time,
// and the live fan-out: N open server-sent-event streams on one web instance, the memory each
// costs, the time from an order being placed to its row reaching every open page, and the
// cafe's orders a second with those pages open beside the same with none.
//   node bench/web.js [N]     (after cargo build; CAFE_BIN or CARGO_TARGET_DIR find the binary)
'use strict';

const fs = require('node:fs');
const zlib = require('node:zlib');
const c = require('../lib/cafe');

const N = Number(process.argv[2] || 1000);
const rss = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };

(async () => {
  const cafe = await c.startCafe({ flags: ['--rate-limit', '0'] });
  try {
    const web = cafe.webs[0];
    await c.addStaff(cafe, 'bea', 'barista');
    await c.addStaff(cafe, 'rio', 'rider');
    const phone = c.randomPhone();
    await c.api(cafe, 'POST', '/customers', { body: { phoneNumber: phone, password: 'customer-pass-1' } });
    const tokens = {
      customer: await c.token(cafe, phone, 'customer-pass-1'),
      barista: await c.token(cafe, 'bea', 'staff-password-1'),
      rider: await c.token(cafe, 'rio', 'staff-password-1'),
      manager: await c.token(cafe, 'manager', cafe.managerPassword),
    };
    for (let i = 0; i < 20; i++) await c.api(cafe, 'POST', '/orders', { token: tokens.customer, body: { productName: 'latte', qty: 1 } });

    console.log('| page | HTML bytes | gzip bytes | render p50 | render p99 |');
    console.log('|---|---|---|---|---|');
    const pages = [['/signin', null], ['/', 'customer'], ['/barista', 'barista'], ['/rider', 'rider'], ['/center', 'rider'], ['/manager', 'manager']];
    for (const [path, who] of pages) {
      const headers = who ? { Cookie: `cafe_session=${tokens[who]}` } : {};
      const times = [];
      let body = '';
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now();
        const res = await fetch(web + path, { headers, redirect: 'manual' });
        body = await res.text();
        times.push(performance.now() - t0);
      }
      const gz = zlib.gzipSync(body).length;
      console.log(`| \`${path}\` (${who || 'anyone'}) | ${body.length} | ${gz} | ${pct(times, 50).toFixed(1)} ms | ${pct(times, 99).toFixed(1)} ms |`);
    }
    for (const asset of ['/assets/cafe.css', '/assets/cafe.js']) {
      const body = await (await fetch(web + asset)).text();
      console.log(`| \`${asset}\` | ${body.length} | ${zlib.gzipSync(body).length} | | |`);
    }

    // Orders a second through the gateway, 8 clients for `secs` seconds.
    const throughput = async (secs) => {
      const until = performance.now() + secs * 1000;
      let placed = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (performance.now() < until) {
          const r = await c.api(cafe, 'POST', '/orders', { token: tokens.customer, body: { productName: 'tea', qty: 1 } });
          if (r.status === 201) placed++;
        }
      }));
      return placed / secs;
    };
    const alone = await throughput(10);

    // N pages open on one web instance: N customer streams of the same person.
    const before = rss(cafe.child.pid);
    const streams = [];
    for (let i = 0; i < N; i++) {
      const res = await fetch(`${web}/live?page=customer`, { headers: { Cookie: `cafe_session=${tokens.customer}`, Accept: 'text/event-stream' } });
      const reader = res.body.getReader();
      const s = { reader, waiting: null, buffer: '' };
      (async () => {
        const dec = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          s.buffer += dec.decode(value);
          if (s.buffer.includes('"op":"upsert"') && s.waiting) { const w = s.waiting; s.waiting = null; s.buffer = ''; w(performance.now()); }
          else if (!s.waiting) s.buffer = '';
        }
      })();
      streams.push(s);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const after = rss(cafe.child.pid);
    const latencies = [];
    for (let round = 0; round < 20; round++) {
      const arrivals = streams.map((s) => new Promise((resolve) => { s.waiting = resolve; }));
      const r = await c.api(cafe, 'POST', '/orders', { token: tokens.customer, body: { productName: 'tea', qty: 1 } });
      const placed = performance.now();
      if (r.status !== 201) throw new Error(`order ${r.status}`);
      for (const t of await Promise.all(arrivals)) latencies.push(Math.max(0, t - placed));
    }
    console.log('');
    console.log(`| open live pages on one web instance | ${N} |`);
    console.log('|---|---|');
    console.log(`| process memory (RSS) before / after opening them | ${(before / 1048576).toFixed(1)} MiB / ${(after / 1048576).toFixed(1)} MiB |`);
    console.log(`| memory per open page | ${((after - before) / N / 1024).toFixed(1)} KiB |`);
    console.log(`| order placed (201) → its row on every open page, p50 | ${pct(latencies, 50).toFixed(1)} ms |`);
    console.log(`| ... p99 (${latencies.length} deliveries) | ${pct(latencies, 99).toFixed(1)} ms |`);
    const watched = await throughput(10);
    console.log(`| orders a second (8 clients, 10 s) with no page open / with the ${N} open | ${alone.toFixed(0)} / ${watched.toFixed(0)} |`);
    for (const s of streams) s.reader.cancel().catch(() => {});
  } finally {
    await cafe.stop();
  }
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
