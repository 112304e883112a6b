// The cafe's one script: the amount before ordering, and live pages. Every page works
// without it; with it, a page follows GET /live (server-sent events) and applies the
// patches it sends: rows added, cells replaced, rows removed, or the live part re-rendered.
(() => {
  'use strict';

  const order = document.getElementById('order');
  if (order) {
    const product = order.querySelector('#product');
    const qty = order.querySelector('#qty');
    const amount = order.querySelector('#amount');
    const update = () => {
      const price = Number(product.selectedOptions[0]?.dataset.price || 0);
      const n = Math.max(0, Math.floor(Number(qty.value) || 0));
      amount.textContent = '₩' + (price * n).toLocaleString('en-US');
    };
    product.addEventListener('change', update);
    qty.addEventListener('input', update);
    update();
  }

  const src = document.body.dataset.live;
  if (!src || !window.EventSource) return;
  const state = document.getElementById('livestate');
  const say = (text) => { state.hidden = false; state.textContent = text; };

  const parse = (html) => {
    const t = document.createElement('template');
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  };
  // Replaces `old` with `el`, keeping the keyboard focus on the same control if it was
  // inside (found again by id, or by its label).
  const swap = (old, el) => {
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    old.replaceWith(el);
    if (!focused) return;
    const label = focused.getAttribute('aria-label');
    const again = (focused.id && el.querySelector('#' + CSS.escape(focused.id)))
      || (label && el.querySelector(`[aria-label="${CSS.escape(label)}"]`));
    if (again) again.focus();
  };
  const flash = (el) => { el.classList.add('changed'); setTimeout(() => el.classList.remove('changed'), 1500); };

  // Re-renders the live part from the server (after a reconnection that cannot replay).
  const reload = async () => {
    const res = await fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
    if (res.redirected) { location.assign(res.url); return; }
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    const fresh = doc.getElementById('live');
    const here = document.getElementById('live');
    if (fresh && here) here.replaceWith(fresh);
  };

  const apply = (p) => {
    // A stage never moves back (an event sent again, or replayed after a fresher render).
    const older = (old, el) => old.dataset.stage && el.dataset.stage && Number(el.dataset.stage) < Number(old.dataset.stage);
    if (p.op === 'upsert') {
      const el = parse(p.html);
      const old = document.getElementById(p.id);
      if (old) { if (older(old, el)) return; swap(old, el); }
      else {
        const list = document.getElementById(p.into);
        if (!list) return;
        if (p.first) list.prepend(el); else list.append(el);
        list.closest('#live')?.querySelector('.empty')?.remove();
      }
      flash(el);
    } else if (p.op === 'replace') {
      const old = document.getElementById(p.id);
      if (!old) return;
      const el = parse(p.html);
      if (older(old, el)) return;
      swap(old, el);
      if (el.tagName !== 'TABLE') flash(el);
    } else if (p.op === 'remove') {
      document.getElementById(p.id)?.remove();
    } else if (p.op === 'reload') {
      reload();
    }
  };

  // Once a form is sent the page is leaving: a patch now would replace the form being sent
  // (a row's Cancel, say) and could lose the person's click.
  let leaving = false;
  document.addEventListener('submit', () => { leaving = true; }, true);
  window.addEventListener('pageshow', () => { leaving = false; });

  const events = new EventSource(src);
  events.onopen = () => { document.body.dataset.liveReady = 'true'; say('Live'); };
  events.onmessage = (e) => { if (!leaving) for (const p of JSON.parse(e.data)) apply(p); };
  events.onerror = () => {
    document.body.dataset.liveReady = 'false';
    if (events.readyState === EventSource.CLOSED) {
      // Refused (signed out, or not this person's page): the page itself says why.
      say('Not live; reloading…');
      setTimeout(() => location.reload(), 2000);
    } else {
      say('Reconnecting…');
    }
  };
})();
