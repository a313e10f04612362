/*!
 * chatshield.js — embeddable live-chat widget for a chatshield identity server (SPEC §2, §3.1, §7).
 * Plain ES2017, no dependencies, no build step; talks only to `apiBase` (default: this script's origin)
 * and injects its own styles, so one script tag suffices:
 *
 *   <script src="https://chat.example.com/static/widget/chatshield.js"></script>
 *   <script>ChatShield.init({widgetToken: "wgt_…"});</script>
 *
 * Identity: anonymous (no details) and non-verified (collectUserData form → "collect_form"; page-given
 * user.data / user.customData → "browser") contacts get a token minted here and kept per org in
 * localStorage (`chatshield:<org id>:token`, so rotating the widget token strands nobody); it is
 * always sent back when minting so the server keeps the same contact and device, and it is
 * forgotten only when a mint replaces it (the server ignores a token it no longer accepts). A verified
 * user.token comes from the customer's backend: never minted or stored here; on 401
 * onTokenExpired() may replace it, else the widget shows "expired". A device token still stored
 * when a verified token arrives is offered once to /widget/contacts/adopt.
 * externalId narrows history, so a generated one is used only by unverified contacts: a verified
 * contact's history spans devices, and it sends only the externalId the page gave.
 * The pre-chat form asks for the org's extraDataCollectionFields whenever the server requires one of
 * them (it refuses a conversation without): the page's list may only relabel, reorder or leave out
 * optional ones.
 * Visitor and agent text is only ever inserted with textContent.
 */
(function (global) {
  'use strict';
  if (global.ChatShield && global.ChatShield.version) return;

  const VERSION = '1.1.2';
  const POLL_MS = 3000;
  const CONFIG_RETRY_MS = [3000, 60000]; // first and longest wait before asking for the config again
  const LOCK_WAIT_MS = 10000; // longest wait for another tab's sign-in (acrossTabs) before going on alone
  const STORAGE_SETTLE_MS = 1000; // longest wait, after that, for its token to show in localStorage
  const MAX_MESSAGE = 10000; // characters (code points), as the server counts them
  const THREAD_PAGE = 200; // the server's page of messages; a full page means more are waiting
  const KINDS = ['contact', 'agent', 'system'];
  const FIELD_TYPES = ['text', 'email', 'number', 'select', 'checkbox'];
  const STORED = ['token', 'meta', 'externalId'];
  const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const DEAD = new Error('ChatShield was destroyed');
  const noop = () => {};

  // document.currentScript is only set while this file first runs.
  const scriptOrigin = (() => {
    try {
      const src = document.currentScript && document.currentScript.src;
      const origin = src ? new URL(src, location.href).origin : '';
      return origin === 'null' ? '' : origin;
    } catch (e) { return ''; }
  })();

  const CSS = `
.cs-root{--cs-primary:#2563eb;--cs-on-primary:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;text-align:left}
.cs-root *,.cs-root *::before,.cs-root *::after{box-sizing:border-box}
.cs-root [hidden]{display:none!important}
.cs-root :where(button,input,select,textarea){font:inherit;color:inherit;margin:0}
.cs-root button{cursor:pointer}
.cs-root button:disabled{cursor:default;opacity:.6}
.cs-root :focus-visible{outline:2px solid var(--cs-primary);outline-offset:2px}
.cs-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;padding:0;border:0;border-radius:50%;background:var(--cs-primary);color:var(--cs-on-primary);box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center}
.cs-launcher svg{width:26px;height:26px}
.cs-panel{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:360px;max-width:calc(100vw - 24px);height:540px;max-height:calc(100vh - 108px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}
.cs-root--inline .cs-panel{position:relative;right:auto;bottom:auto;z-index:auto;width:100%;max-width:none;height:100%;min-height:420px;max-height:none;box-shadow:none;border:1px solid #d0d7de}
@media (max-width:480px){.cs-root:not(.cs-root--inline) .cs-panel{right:0;bottom:0;width:100vw;max-width:none;height:100%;max-height:none;border-radius:0}}
.cs-header{display:flex;align-items:center;gap:6px;padding:10px 12px;background:var(--cs-primary);color:var(--cs-on-primary)}
.cs-title{flex:1;margin:0;font-size:16px;font-weight:600;line-height:1.3;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cs-icon-btn{width:32px;height:32px;padding:0;border:0;border-radius:6px;background:transparent;font-size:20px;line-height:1}
.cs-icon-btn:hover{background:rgba(127,127,127,.25)}
.cs-body{flex:1;min-height:0;display:flex;flex-direction:column}
.cs-view{flex:1;min-height:0;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px}
.cs-btn{padding:9px 14px;border:0;border-radius:8px;background:var(--cs-primary);color:var(--cs-on-primary);font-weight:600}
.cs-btn--ghost{background:#fff;color:#1f2328;border:1px solid #d0d7de;font-weight:500}
.cs-conversations{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:6px}
.cs-conversation{display:block;width:100%;padding:8px 10px;text-align:left;background:#f6f8fa;border:1px solid #d0d7de;border-radius:8px}
.cs-conversation:hover{border-color:var(--cs-primary)}
.cs-conv-preview{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cs-conv-meta{display:flex;justify-content:space-between;gap:8px;margin-top:2px;font-size:12px;color:#57606a}
.cs-badge{padding:0 6px;border-radius:8px;background:#eaeef2}
.cs-note{margin:8px 0;color:#57606a;text-align:center}
.cs-field label{display:block;margin-bottom:3px;font-weight:600}
.cs-field--checkbox{display:flex;flex-wrap:wrap;align-items:center;gap:8px}
.cs-field--checkbox label{margin:0;font-weight:500}
.cs-req,.cs-field-error{color:#cf222e}
.cs-input{width:100%;padding:7px 9px;border:1px solid #8c959f;border-radius:6px;background:#fff;color:#1f2328}
.cs-input[type=checkbox]{width:auto}
.cs-input[aria-invalid=true]{border-color:#cf222e}
.cs-field-error{flex-basis:100%;margin-top:3px;font-size:12px}
.cs-field-error:empty{display:none}
.cs-view--thread{padding:0;gap:0;overflow:hidden}
.cs-messages{flex:1;min-height:0;overflow-y:auto;list-style:none;margin:0;padding:12px;display:flex;flex-direction:column;gap:8px}
.cs-message{max-width:85%;padding:7px 10px;border-radius:12px;background:#f0f2f5;align-self:flex-start;overflow-wrap:anywhere}
.cs-message--contact{align-self:flex-end;background:var(--cs-primary);color:var(--cs-on-primary)}
.cs-message--system{align-self:center;background:transparent;color:#57606a;font-size:12px;font-style:italic;text-align:center}
.cs-message-meta{margin-bottom:2px;font-size:11px;font-weight:600;opacity:.8}
.cs-message-text{white-space:pre-wrap}
.cs-message-time{display:block;margin-top:2px;font-size:11px;opacity:.7;text-align:right}
.cs-compose{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid #d0d7de}
.cs-compose textarea{flex:1;min-height:40px;max-height:120px;padding:8px;resize:none;border-radius:8px}
.cs-status{padding:6px 12px;font-size:12px;color:#cf222e;border-top:1px solid #d0d7de}
.cs-status:empty{display:none}
.cs-sr{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}
`;

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const e = (body && body.error) || {};
      super(e.message || (status ? 'HTTP ' + status : 'Network error'));
      Object.assign(this, {status, code: e.code || '', fields: e.fields || null, retryAfter: Number(retryAfter) || 0});
    }
  }
  const apiError = (status, code, message) => new ApiError(status, {error: {code, message}});

  // Constructed stylesheets are CSSOM, so a strict style-src CSP does not block them.
  function injectStyles(css) {
    try {
      if (Array.isArray(document.adoptedStyleSheets) && 'replaceSync' in CSSStyleSheet.prototype) {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(css);
        document.adoptedStyleSheets = document.adoptedStyleSheets.concat(sheet);
        return () => { document.adoptedStyleSheets = document.adoptedStyleSheets.filter((x) => x !== sheet); };
      }
    } catch (e) { /* fall back to a <style> element */ }
    const el = h('style', {text: css});
    (document.head || document.documentElement).appendChild(el);
    return () => el.remove();
  }

  // localStorage when usable (private modes and sandboxed frames may refuse it), else memory.
  function makeStore(prefix) {
    const mem = {};
    const ls = (() => {
      try { global.localStorage.setItem(prefix + 'probe', '1'); global.localStorage.removeItem(prefix + 'probe'); return global.localStorage; } catch (e) { return null; }
    })();
    return {
      get: (k) => { if (k in mem) return mem[k]; try { return ls ? ls.getItem(prefix + k) : null; } catch (e) { return null; } },
      set: (k, v) => { try { if (ls) return ls.setItem(prefix + k, v); } catch (e) { /* quota */ } mem[k] = v; },
      del: (k) => { delete mem[k]; try { if (ls) ls.removeItem(prefix + k); } catch (e) { /* ignore */ } },
    };
  }

  function uuid() {
    const c = global.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    const b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (n) => n.toString(16).padStart(2, '0')).join('');
    return [x.slice(0, 8), x.slice(8, 12), x.slice(12, 16), x.slice(16, 20), x.slice(20)].join('-');
  }

  // One browser's tabs establish an identity one at a time (Web Locks, where the browser has them,
  // in secure contexts): two tabs opened on a first visit would otherwise each mint a contact, and
  // the token stored last would strand the other tab's conversations. Without locks, as before.
  function acrossTabs(name, fn) {
    const locks = global.navigator && global.navigator.locks;
    if (!locks || typeof locks.request !== 'function') return fn();
    // A tab whose sign-in hangs must not hold the others for as long as the browser waits on it.
    const timeout = global.AbortSignal && typeof AbortSignal.timeout === 'function';
    const options = timeout ? {signal: AbortSignal.timeout(LOCK_WAIT_MS)} : {};
    let ran = false;
    const run = (waited) => { ran = true; return fn(waited); };
    // Free at once, or held by another tab: `fn` learns which (`waited`).
    return locks.request(name, {ifAvailable: true}, (lock) => (lock ? run(false) : locks.request(name, options, () => run(true))))
      .catch((err) => {
        if (ran) throw err;
        return fn(false); // the lock was refused (an opaque origin, say) or not granted in time
      });
  }

  // Reads (never verifies) a JWT's claims: only to know when to re-mint and what to report.
  function claims(token) {
    try {
      const p = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))) || {};
    } catch (e) { return {}; }
  }

  // Re-mint once 90% of the lifetime has passed, while the server still accepts the old token.
  function expiresSoon(token) {
    const c = claims(token);
    if (!c.exp) return false;
    return c.exp * 1000 - Date.now() < Math.max(c.iat ? (c.exp - c.iat) * 100 : 0, 60000);
  }

  // Which details a stored token was minted with (FNV-1a), so a reload re-mints only on a change.
  function fingerprint(obj) {
    const str = JSON.stringify(obj);
    let hash = 0x811c9dc5;
    for (let i = 0; i < str.length; i++) hash = Math.imul(hash ^ str.charCodeAt(i), 0x01000193) >>> 0;
    return hash.toString(36);
  }

  // Up to 1.0 the entries were keyed by widget token (`chatshield:wgt_…:`), which rotating the token
  // stranded. The newest such entries whose token names this org (`aud`) move into `store`; the
  // org's older ones, devices just as stranded, go with them. Other orgs' entries stay.
  function adoptLegacyEntries(store, orgId) {
    try {
      const ls = global.localStorage;
      const found = [];
      for (let i = 0; i < ls.length; i++) {
        const m = /^(chatshield:wgt_[^:]*:)token$/.exec(ls.key(i) || '');
        const c = m ? claims(ls.getItem(m[0])) : {};
        if (m && c.aud === orgId) found.push({prefix: m[1], iat: Number(c.iat) || 0});
      }
      if (!found.length) return;
      const newest = found.reduce((a, b) => (b.iat > a.iat ? b : a));
      for (const k of STORED) {
        const v = ls.getItem(newest.prefix + k);
        if (v !== null) store.set(k, v);
      }
      for (const f of found) for (const k of STORED) ls.removeItem(f.prefix + k);
    } catch (e) { /* storage refused: nothing to adopt */ }
  }

  // The server's extraDataCollectionFields are the truth: it refuses unknown names and missing
  // required answers. A page's list is presentation only: it may relabel and reorder the server's
  // fields and leave out optional ones; its other names are ignored, required fields always stay.
  function formFields(server, page) {
    const known = (Array.isArray(server) ? server : []).filter((f) => f && typeof f.name === 'string' && f.name);
    if (!Array.isArray(page)) return known;
    const byName = new Map(known.map((f) => [f.name, f]));
    const used = new Set();
    const fields = [];
    for (const p of page) {
      const f = p && byName.get(p.name);
      if (!f || used.has(f.name)) continue;
      used.add(f.name);
      fields.push(typeof p.label === 'string' && p.label.trim() ? Object.assign({}, f, {label: p.label}) : f);
    }
    return fields.concat(known.filter((f) => f.required && !used.has(f.name)));
  }

  // Tiledesk-style clients hand tokens around as "JWT <jwt>".
  const bareToken = (t) => String(t).trim().replace(/^(JWT|Bearer)\s+/i, '');

  function textOn(hex) {
    const n = parseInt(hex.slice(1), 16);
    const lin = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    const lum = 0.2126 * lin((n >> 16) & 255) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
    return lum > 0.179 ? '#111111' : '#ffffff';
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d.getTime())) return '';
    const time = d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
    if (d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString([], {month: 'short', day: 'numeric'}) + ' ' + time;
  }

  let seq = 0;
  const uid = (p) => 'cs-' + p + '-' + (++seq);

  // Element builder: attributes via setAttribute, `text` via textContent, `on…` via listeners.
  function h(tag, props, children) {
    const el = document.createElement(tag);
    for (const k of Object.keys(props || {})) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === 'text') el.textContent = String(v);
      else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children || []) if (c) el.appendChild(c);
    return el;
  }

  function chatIcon() {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    const path = document.createElementNS(ns, 'path');
    [['viewBox', '0 0 24 24'], ['aria-hidden', 'true'], ['focusable', 'false']].forEach((a) => svg.setAttribute(a[0], a[1]));
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z');
    svg.appendChild(path);
    return svg;
  }

  function createWidget(opts) {
    const widgetToken = opts.widgetToken;
    const apiBase = String(opts.apiBase || scriptOrigin || location.origin).replace(/\/+$/, '');
    let store = null; // per org, so bound only once the config names the org (bindStore)
    let storeName = null; // its prefix, which also names its lock across tabs (acrossTabs)
    const aborter = typeof AbortController === 'function' ? new AbortController() : null;
    const inline = !!(opts.container && opts.container.appendChild);
    const user = Object.assign({}, opts.user);
    const s = {
      dead: false, starting: false, config: null, collect: false, fields: [],
      mode: user.token ? 'verified' : (user.data || user.customData ? 'browser' : 'anonymous'),
      signinRequired: false, expired: false, adoptTried: false, queue: null,
      token: null, trust: null, contactId: null, externalId: null,
      collected: null, // {name?, email?} typed into the form during this page view
      isOpen: false, view: null, list: null, thread: null, session: null, next: null,
      seen: new Set(), lastId: null, pollTimer: null, pollGen: 0, sending: false, statusFrom: null,
      retryTimer: null, retryMs: 0,
      forgetDevice: false, // logout() came before the config named the org's store
    };

    // ---- HTTP ----

    async function request(method, path, o) {
      o = o || {};
      if (s.dead) throw DEAD;
      const q = new URLSearchParams();
      for (const k of Object.keys(o.query || {})) if (o.query[k] != null && o.query[k] !== '') q.set(k, o.query[k]);
      const headers = {'X-Widget-Token': widgetToken, Accept: 'application/json'};
      if (o.token) headers.Authorization = 'Bearer ' + o.token;
      const init = {method, headers, credentials: 'omit', cache: 'no-store', signal: aborter ? aborter.signal : undefined};
      if (o.body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(o.body);
      }
      let res;
      let data = null;
      try {
        res = await fetch(apiBase + path + (String(q) ? '?' + q : ''), init);
      } catch (e) {
        throw s.dead ? DEAD : new ApiError(0, null);
      }
      try { const t = await res.text(); data = t ? JSON.parse(t) : null; } catch (e) { data = null; }
      if (s.dead) throw DEAD;
      if (!res.ok) throw new ApiError(res.status, data, res.headers.get('Retry-After'));
      return data;
    }

    // Identity changes (mint, refresh) run one at a time; each step re-checks the state when it runs.
    function serial(fn) {
      s.queue = (s.queue || Promise.resolve()).catch(noop).then(fn);
      return s.queue;
    }

    const expiredError = () => apiError(401, 'token_expired', 'Your chat session has expired.');

    function ensureToken() {
      return serial(() => {
        if (s.token) return null;
        if (s.mode === 'verified' || s.expired) throw expiredError();
        if (s.signinRequired) throw apiError(403, 'verification_required', 'Please sign in to chat.');
        return storedOrMinted(null);
      });
    }

    // The tabs sign in one at a time (acrossTabs). Another tab's localStorage write can reach this
    // one a moment after that tab released the lock (Chromium keeps a copy of localStorage in each
    // renderer), so a tab that had to wait gives the token it waited for (one other than `used`)
    // up to STORAGE_SETTLE_MS to show before it signs in anew.
    function identityTurn(used, fn) {
      return acrossTabs(storeName + 'identity', (waited) => (waited ? tokenArrival(used) : Promise.resolve()).then(fn));
    }

    // A browser identity, in this tab's turn: the stored token when it is good and not `used`,
    // else a mint presenting the token held.
    function storedOrMinted(used) {
      return identityTurn(used, () => (useStoredToken(used) ? null : mint(baseDetails())));
    }

    function tokenArrival(used) {
      const deadline = Date.now() + STORAGE_SETTLE_MS;
      return new Promise((resolve) => {
        (function check() {
          const token = store && store.get('token');
          if ((token && token !== used) || Date.now() >= deadline) resolve();
          else setTimeout(check, 25);
        })();
      });
    }

    // Take the stored token, when it is still good and not `used` (the one just refused): kept
    // from an earlier visit, or stored by another tab that signed in first (under acrossTabs), so
    // the browser's tabs keep sharing one identity, after a logout or a revocation too.
    function useStoredToken(used) {
      const stored = store && store.get('token');
      if (!stored || stored === used || expiresSoon(stored)) return false;
      const meta = readMeta();
      useToken(stored, meta.trust, meta.contactId);
      if (!user.externalId) s.externalId = store.get('externalId') || s.externalId;
      return true;
    }

    // A call with the contact token; a 401 gets one recovery (re-mint or onTokenExpired) and one retry.
    async function authed(method, path, o) {
      await ensureToken();
      const used = s.token;
      try {
        return await request(method, path, Object.assign({}, o, {token: used}));
      } catch (err) {
        if (err.status !== 401) throw err;
      }
      await recover(used);
      try {
        return await request(method, path, Object.assign({}, o, {token: s.token}));
      } catch (err) {
        if (err.status === 401 && s.mode === 'verified') markExpired();
        throw err;
      }
    }

    function recover(used) {
      return serial(async () => {
        if (s.token && s.token !== used) return; // another call already replaced it
        if (s.mode !== 'verified') {
          await storedOrMinted(used);
          return;
        }
        let fresh = null;
        if (!s.expired && typeof opts.onTokenExpired === 'function') {
          try { fresh = await opts.onTokenExpired(); } catch (e) { fresh = null; }
        }
        if (s.dead) throw DEAD;
        if (typeof fresh === 'string' && fresh.trim() && bareToken(fresh) !== used) {
          s.token = bareToken(fresh);
          s.trust = claims(s.token).trust || 'verified';
          return;
        }
        markExpired();
        throw expiredError();
      });
    }

    // ---- identity ----

    function baseDetails() {
      const d = {};
      const data = user.data || {};
      for (const k of ['name', 'email']) if (typeof data[k] === 'string' && data[k].trim()) d[k] = data[k].trim();
      if (user.customData && typeof user.customData === 'object') d.customData = user.customData;
      if (s.collected) return Object.assign(d, s.collected, {method: 'collect_form'});
      return s.mode === 'browser' ? Object.assign(d, {method: 'browser'}) : {};
    }

    function bindStore(orgId) {
      storeName = 'chatshield:' + (orgId || widgetToken) + ':';
      store = makeStore(storeName);
      if (orgId && store.get('token') === null && store.get('externalId') === null) adoptLegacyEntries(store, orgId);
      if (!s.forgetDevice) return null;
      const previous = store.get('token');
      STORED.forEach(store.del);
      // Best effort, as in logout(); awaited, so the revocation is done before a new sign-in.
      return previous ? request('POST', '/widget/logout', {token: previous}).catch(noop) : null;
    }

    function readMeta() {
      try { return JSON.parse(store.get('meta')) || {}; } catch (e) { return {}; }
    }

    function forgetToken() {
      store.del('token');
      store.del('meta');
    }

    function ensureExternalId() {
      if (!s.externalId) {
        s.externalId = user.externalId || store.get('externalId') || uuid();
        if (!user.externalId) store.set('externalId', s.externalId);
      }
      return s.externalId;
    }

    const sessionExternalId = () => (s.mode === 'verified' ? user.externalId || null : ensureExternalId());

    function useToken(token, trust, contactId) {
      s.token = token;
      s.trust = trust || claims(token).trust || null;
      s.contactId = contactId != null ? contactId : claims(token).sub || null;
    }

    // Anonymous / non-verified only: verified tokens are never minted here. The token this browser
    // holds goes along: the server keeps its contact and device while it is good, and ignores it
    // once it is not (a fresh identity, which replaces it below). So a 401 here refuses the widget
    // token itself (rotated away), which says nothing about the contact token: it stays stored, for
    // the page that carries the new widget token.
    async function mint(details) {
      const body = Object.assign({externalId: ensureExternalId()}, details);
      const res = await request('POST', '/widget/contacts/unverified', {body, token: s.token || store.get('token')});
      const contact = res.contact || {};
      useToken(res.token, contact.trust, contact.id);
      store.set('token', res.token);
      store.set('meta', JSON.stringify({contactId: s.contactId, trust: s.trust, fp: fingerprint(details)}));
      if (!user.externalId) {
        // Stored again: another tab may have written its own while this one minted (acrossTabs).
        if (res.externalId) s.externalId = res.externalId;
        store.set('externalId', s.externalId);
      }
    }

    async function establishIdentity() {
      if (s.mode === 'verified') {
        useToken(bareToken(user.token), null, null);
        s.trust = s.trust || 'verified';
        try {
          const me = await authed('GET', '/widget/me');
          s.contactId = me.id;
          s.trust = me.trust || s.trust;
        } catch (err) {
          if (s.expired) return;
          throw err;
        }
        await adoptDeviceHistory();
        return;
      }
      ensureExternalId();
      if (s.config.requireVerifiedIdentity) {
        s.signinRequired = true;
        return;
      }
      await serial(() => identityTurn(null, () => {
        // What another tab stored while this one waited for the lock.
        if (!user.externalId) s.externalId = store.get('externalId') || s.externalId;
        const details = baseDetails();
        const same = s.mode === 'anonymous' || readMeta().fp === fingerprint(details);
        return same && useStoredToken(null) ? null : mint(details);
      }));
    }

    // SPEC §2 rule 2: the only upgrade path is an explicit adoption by the same browser, once.
    async function adoptDeviceHistory() {
      const previous = store.get('token');
      if (!previous || s.adoptTried) return;
      s.adoptTried = true;
      try {
        await authed('POST', '/widget/contacts/adopt', {body: {previousToken: previous}});
        forgetToken();
      } catch (err) {
        // Keep the device token only when a later visit could still succeed.
        if (err.status && err.status < 500 && err.status !== 401 && err.status !== 429) forgetToken();
      }
    }

    function markExpired() {
      if (s.expired) return;
      Object.assign(s, {expired: true, token: null, trust: null});
      stopPolling();
      if (!s.dead) showHome();
    }

    // ---- DOM ----

    const removeStyles = injectStyles(CSS);
    const panelId = uid('panel');
    const titleId = uid('title');
    const root = h('div', {class: 'cs-root' + (inline ? ' cs-root--inline' : ''), 'data-testid': 'cs-root'});
    const title = h('h2', {class: 'cs-title', id: titleId, text: 'Chat'});
    const back = h('button', {type: 'button', class: 'cs-icon-btn cs-back', 'data-testid': 'cs-back', 'aria-label': 'Back to conversations',
      text: '\u2190', hidden: true, onclick: () => showHome(true)});
    const closeBtn = h('button', {type: 'button', class: 'cs-icon-btn cs-close', 'data-testid': 'cs-close', 'aria-label': 'Close chat',
      text: '\u00d7', hidden: inline, onclick: () => close()});
    const body = h('div', {class: 'cs-body'});
    const statusEl = h('div', {class: 'cs-status', role: 'status', 'aria-live': 'polite', 'data-testid': 'cs-status'});
    const panel = h('section', {class: 'cs-panel', id: panelId, role: 'dialog', 'aria-labelledby': titleId, 'data-testid': 'cs-panel', hidden: true},
      [h('div', {class: 'cs-header'}, [back, title, closeBtn]), body, statusEl]);
    const launcher = inline ? null : h('button', {type: 'button', class: 'cs-launcher', 'data-testid': 'cs-launcher', 'aria-label': 'Open chat',
      'aria-expanded': 'false', 'aria-controls': panelId, onclick: () => (s.isOpen ? close() : open())}, [chatIcon()]);
    root.append.apply(root, launcher ? [launcher, panel] : [panel]);
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && s.isOpen && !inline) { e.preventDefault(); close(); }
    });
    // A page may call init() from <head>, before <body> exists: mount once it does.
    if (inline || document.body) (inline ? opts.container : document.body).appendChild(root);
    else document.addEventListener('DOMContentLoaded', () => { if (!s.dead) document.body.appendChild(root); }, {once: true});

    // The status line shows one message; `from` lets the part that failed clear it once it works again.
    function setStatus(text, from) {
      statusEl.textContent = text || '';
      s.statusFrom = text ? from || null : null;
    }
    const clearStatus = (from) => { if (s.statusFrom === from) setStatus(''); };

    function report(err, from) {
      if (s.dead || err === DEAD) return;
      if (s.expired || err.code === 'verification_required') return showHome();
      if (!(err instanceof ApiError)) {
        if (global.console) console.error('ChatShield:', err);
        return setStatus('Something went wrong.', from);
      }
      if (!err.status) return setStatus("Can't reach the chat server. Check your connection and try again.", from);
      if (err.status === 429) return setStatus('Too many requests. Please wait a moment and try again.', from);
      if (err.status >= 500) return setStatus('The chat server had a problem. Please try again.', from);
      setStatus(err.message || 'Something went wrong.', from);
    }

    function setView(name, el, focusEl) {
      s.view = name;
      if (name !== 'thread') { stopPolling(); s.thread = null; }
      if (name !== 'list') s.list = null;
      while (body.firstChild) body.removeChild(body.firstChild);
      body.appendChild(el);
      back.hidden = name !== 'thread' && name !== 'form';
      if (focusEl && s.isOpen) focusEl.focus();
    }

    function applyConfig() {
      const cfg = s.config;
      const theme = cfg.theme || {};
      title.textContent = theme.title || (cfg.org && cfg.org.name) || 'Chat';
      if (/^#[0-9a-f]{6}$/i.test(theme.primaryColor)) {
        root.style.setProperty('--cs-primary', theme.primaryColor);
        root.style.setProperty('--cs-on-primary', textOn(theme.primaryColor));
      }
      s.collect = typeof opts.collectUserData === 'boolean' ? opts.collectUserData : !!cfg.collectUserData;
      s.fields = formFields(cfg.extraDataCollectionFields, opts.extraDataCollectionFields);
    }

    const note = (testid, text, hidden) => h('p', {class: 'cs-note', 'data-testid': testid, text, hidden});
    const simpleView = (testid, text) => h('div', {class: 'cs-view'}, [note(testid, text)]);

    // Where a visitor lands: the conversation list, or why there is none.
    function showHome(byUser) {
      if (s.dead) return;
      s.session = null;
      if (s.expired) {
        setStatus('');
        return setView('expired', simpleView('cs-expired', 'Your chat session has expired. Please reload the page to continue.'));
      }
      if (!s.config) return setView('loading', simpleView('cs-loading', 'Loading\u2026'));
      if (s.signinRequired && !s.token) return setView('signin', simpleView('cs-signin-required', 'Please sign in to chat with us.'));
      showList(byUser);
    }

    // ---- conversation list ----

    function showList(focus) {
      const newBtn = h('button', {type: 'button', class: 'cs-btn cs-new', 'data-testid': 'cs-new-conversation',
        text: 'New conversation', onclick: newConversation});
      const L = {
        ul: h('ul', {class: 'cs-conversations', 'data-testid': 'cs-conversations', 'aria-label': 'Your conversations'}),
        empty: note('cs-empty', 'No conversations yet.', true),
        more: h('button', {type: 'button', class: 'cs-btn cs-btn--ghost cs-load-more', 'data-testid': 'cs-load-more',
          text: 'Load more', hidden: true, onclick: () => loadConversations(true)}),
      };
      setView('list', h('div', {class: 'cs-view cs-view--list', 'data-testid': 'cs-list'}, [newBtn, L.ul, L.empty, L.more]), focus && newBtn);
      s.list = L;
      if (s.isOpen) loadConversations(false);
    }

    async function loadConversations(more) {
      const L = s.list;
      if (!L) return;
      if (!s.token) { L.empty.hidden = false; return; } // nothing minted yet (e.g. after logout)
      L.more.disabled = true;
      try {
        const query = {externalId: sessionExternalId(), cursor: more ? s.next : null};
        const data = (await authed('GET', '/widget/sessions', {query})) || {};
        if (s.list !== L) return;
        if (!more) while (L.ul.firstChild) L.ul.removeChild(L.ul.firstChild);
        for (const c of data.results || []) L.ul.appendChild(conversationItem(c));
        s.next = data.next || null;
        L.more.hidden = !s.next;
        L.empty.hidden = L.ul.children.length > 0;
        clearStatus('list');
      } catch (err) {
        report(err, 'list');
      } finally {
        L.more.disabled = false;
      }
    }

    function conversationItem(c) {
      const last = c.last_message;
      const preview = last ? (last.sender_kind === 'contact' ? 'You: ' : '') + last.text : 'No messages yet';
      return h('li', null, [h('button', {type: 'button', class: 'cs-conversation', 'data-testid': 'cs-conversation',
        'data-id': c.id, 'data-status': c.status, onclick: () => openThread(c)}, [
        h('span', {class: 'cs-conv-preview', text: preview}),
        h('span', {class: 'cs-conv-meta'}, [h('span', {text: fmtTime(c.last_message_at || c.created_at)}),
          c.status && c.status !== 'open' && h('span', {class: 'cs-badge', text: c.status})]),
      ])]);
    }

    // Name and email only when collectUserData asks for them, never from a verified visitor.
    const askIdentity = () => s.collect && s.mode !== 'verified';

    // The extra fields come with collectUserData, and regardless of it when the server requires
    // one: it refuses a conversation without the answer.
    function newConversation() {
      setStatus('');
      const identityInputs = askIdentity();
      const fields = s.fields.length > 0 && (s.collect || s.fields.some((f) => f.required));
      if (identityInputs || fields) showForm(identityInputs);
      else openThread(null);
    }

    // ---- pre-chat form (collectUserData, extraDataCollectionFields) ----

    function fieldRow(f, value) {
      const type = FIELD_TYPES.indexOf(f.type) >= 0 ? f.type : 'text';
      const id = uid('field');
      const err = h('div', {class: 'cs-field-error', id: id + '-error'});
      const attrs = {id, type, name: f.name, class: 'cs-input', 'data-testid': 'cs-field-' + f.name,
        required: !!f.required, 'aria-describedby': err.id, autocomplete: f.autocomplete};
      const label = h('label', {for: id, text: String(f.label || f.name)});
      if (f.required) label.appendChild(h('span', {class: 'cs-req', 'aria-hidden': 'true', text: ' *'}));
      let input;
      if (type === 'select') {
        delete attrs.type;
        input = h('select', attrs, [h('option', {value: '', text: 'Choose\u2026'})]);
        for (const o of Array.isArray(f.options) ? f.options : []) {
          const v = o !== null && typeof o === 'object' ? o.value : o;
          const text = o !== null && typeof o === 'object' && o.label != null ? o.label : v;
          input.appendChild(h('option', {value: String(v), text: String(text)}));
        }
      } else {
        input = h('input', attrs);
      }
      if (type === 'checkbox') input.checked = value === true;
      else if (value != null) input.value = String(value);
      const row = type === 'checkbox'
        ? h('div', {class: 'cs-field cs-field--checkbox'}, [input, label, err])
        : h('div', {class: 'cs-field'}, [label, input, err]);
      return {row, input, err, field: f, type};
    }

    function setFieldError(r, msg) {
      r.err.textContent = msg || '';
      if (msg) r.input.setAttribute('aria-invalid', 'true');
      else r.input.removeAttribute('aria-invalid');
    }

    // `again` re-asks after the server refused: {values typed so far, errors, text of a message
    // waiting to be sent once the conversation exists}.
    function showForm(identityInputs, again) {
      const a = again || {};
      const typed = a.values || {};
      const prefill = s.collected || opts.prefillUserData || (s.mode === 'browser' && user.data) || {};
      const value = (name) => (typed[name] != null ? typed[name] : prefill[name]);
      const rows = [];
      if (identityInputs) {
        rows.push(fieldRow({name: 'name', label: 'Name', required: true, autocomplete: 'name'}, value('name')));
        rows.push(fieldRow({name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'email'}, value('email')));
      }
      for (const f of s.fields) if (!rows.some((r) => r.field.name === f.name)) rows.push(fieldRow(f, typed[f.name]));
      const submit = h('button', {type: 'submit', class: 'cs-btn', 'data-testid': 'cs-form-submit', text: 'Start conversation'});
      const intro = identityInputs ? 'Before we start, please tell us how to reach you.' : 'Before we start, please answer a few questions.';
      const form = h('form', {class: 'cs-view cs-form', 'data-testid': 'cs-form', novalidate: true, 'aria-label': 'Your details'},
        [note(null, intro)].concat(rows.map((r) => r.row), [submit]));
      form.addEventListener('submit', (e) => { e.preventDefault(); submitForm(rows, identityInputs, submit, a.text); });
      setView('form', form, rows[0].input);
      if (a.errors && showServerErrors(rows, a.errors)) setStatus('Please check the highlighted fields.', 'form');
      // A returning non-verified visitor gets back what they typed last time.
      if (identityInputs && !value('name') && !value('email') && s.trust === 'non_verified') {
        authed('GET', '/widget/me').then((me) => {
          if (s.view === 'form' && me) for (const r of rows.slice(0, 2)) if (!r.input.value && me[r.field.name]) r.input.value = me[r.field.name];
        }, noop);
      }
    }

    async function submitForm(rows, identityInputs, submit, text) {
      if (submit.disabled) return;
      const values = {};
      let firstBad = null;
      for (const r of rows) {
        const v = r.type === 'checkbox' ? r.input.checked : r.input.value.trim();
        let msg = '';
        if (r.input.validity && r.input.validity.badInput) msg = 'Enter a number.';
        else if (r.field.required && (v === '' || v === false)) msg = 'This field is required.';
        else if (r.type === 'email' && v && !EMAIL_RE.test(v)) msg = 'Enter a valid email address.';
        setFieldError(r, msg);
        firstBad = firstBad || (msg && r.input);
        values[r.field.name] = r.type === 'number' && v !== '' ? Number(v) : v;
      }
      if (firstBad) {
        setStatus('Please check the highlighted fields.', 'form');
        return firstBad.focus();
      }
      const answers = {};
      for (const f of s.fields) if (values[f.name] !== '' && values[f.name] != null) answers[f.name] = values[f.name];
      submit.disabled = true;
      setStatus('');
      try {
        if (identityInputs) {
          s.collected = {};
          for (const k of ['name', 'email']) if (values[k]) s.collected[k] = values[k];
          const details = baseDetails();
          await serial(() => (s.token && readMeta().fp === fingerprint(details) ? null : mint(details)));
        }
        const created = await createSession(Object.keys(answers).length ? answers : null);
        if (s.view !== 'form') return;
        openThread(created);
        if (text) s.thread.input.value = text;
      } catch (err) {
        if (!(await askForFields(err, values, text))) report(err, 'form');
      } finally {
        submit.disabled = false;
      }
    }

    // Validation errors may come as {email: [...]}, {"fields.topic": [...]} or {fields: {topic: [...]}}.
    function fieldErrors(fields, into) {
      const errors = into || Object.create(null);
      for (const key of Object.keys(fields || {})) {
        const val = fields[key];
        if (val && typeof val === 'object' && !Array.isArray(val)) fieldErrors(val, errors);
        else errors[key.replace(/^fields\./, '')] = [].concat(val).join(' ');
      }
      return errors;
    }

    function showServerErrors(rows, fields) {
      const errors = fieldErrors(fields);
      const named = rows.filter((r) => r.field.name in errors);
      for (const r of named) setFieldError(r, errors[r.field.name]);
      return named.length > 0;
    }

    // A 400 naming fields no form on screen shows (the org's fields changed since the config was
    // read): the config is read again and the form asks for them, with the server's words. False
    // when the form would show none of those errors: the caller reports the error as it is.
    async function askForFields(err, values, text) {
      if (err.status !== 400 || !err.fields) return false;
      const view = body.firstElementChild;
      const before = JSON.stringify(s.fields);
      try {
        s.config = (await request('GET', '/widget/config')) || s.config;
        applyConfig();
      } catch (e) { /* the fields already known will have to do */ }
      if (s.dead || body.firstElementChild !== view) return true; // the visitor has moved on
      const identityInputs = askIdentity();
      const errors = fieldErrors(err.fields);
      const names = s.fields.map((f) => f.name).concat(identityInputs ? ['name', 'email'] : []);
      const changed = JSON.stringify(s.fields) !== before; // a field gone, renamed, retyped or new options
      if (!changed && !names.some((n) => n in errors)) return false;
      showForm(identityInputs, {values, errors: err.fields, text});
      if (s.statusFrom !== 'form') setStatus('The form has changed. Please check it and try again.', 'form');
      return true;
    }

    function createSession(fields) {
      const body = {};
      const externalId = sessionExternalId();
      if (externalId) body.externalId = externalId;
      if (fields) body.fields = fields;
      return authed('POST', '/widget/sessions', {body});
    }

    // ---- thread ----

    function openThread(c) {
      setStatus('');
      s.session = {id: c && c.id != null ? c.id : null, status: (c && c.status) || 'open'};
      s.seen = new Set();
      s.lastId = null;
      const inputId = uid('message');
      const log = h('ol', {class: 'cs-messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat history', 'data-testid': 'cs-messages'});
      const empty = note('cs-thread-empty', 'Send a message to start the conversation.', s.session.id != null);
      const input = h('textarea', {id: inputId, name: 'message', rows: 2, dir: 'auto', class: 'cs-input',
        'data-testid': 'cs-message-input', placeholder: 'Type your message\u2026'});
      const send = h('button', {type: 'submit', class: 'cs-btn cs-send', 'data-testid': 'cs-send', text: 'Send'});
      const compose = h('form', {class: 'cs-compose', 'data-testid': 'cs-compose'},
        [h('label', {class: 'cs-sr', for: inputId, text: 'Message'}), input, send]);
      compose.addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
      input.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.altKey || e.ctrlKey || e.metaKey) return;
        e.preventDefault();
        sendMessage();
      });
      setView('thread', h('div', {class: 'cs-view cs-view--thread', 'data-testid': 'cs-thread'}, [empty, log, compose]), input);
      s.thread = {log, empty, input, send};
      if (s.session.id != null) refreshThread();
    }

    const messagesPath = (id) => '/widget/sessions/' + encodeURIComponent(id) + '/messages';

    function messageItem(m) {
      const kind = KINDS.indexOf(m.sender_kind) >= 0 ? m.sender_kind : 'agent';
      const who = kind === 'contact' ? '' : m.sender_name || (kind === 'agent' ? 'Agent' : '');
      return h('li', {class: 'cs-message cs-message--' + kind, 'data-testid': 'cs-message', 'data-sender-kind': kind, 'data-id': m.id}, [
        kind === 'contact' ? h('span', {class: 'cs-sr', text: 'You: '}) : who && h('div', {class: 'cs-message-meta', text: who}),
        h('div', {class: 'cs-message-text', dir: 'auto', text: m.text == null ? '' : m.text}),
        m.created_at && h('time', {class: 'cs-message-time', datetime: m.created_at, text: fmtTime(m.created_at)}),
      ]);
    }

    // Shows messages in id order. Only the poll (`fromPoll`) moves its cursor: the visitor's own
    // message, shown as soon as it is sent, may come after replies the poll has not fetched yet.
    function appendMessages(list, fromPoll) {
      const T = s.thread;
      if (!T || !Array.isArray(list)) return;
      const log = T.log;
      const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
      let added = false;
      let mine = false;
      for (const m of list) {
        if (!m || m.id == null) continue;
        if (fromPoll) s.lastId = m.id;
        if (s.seen.has(String(m.id))) continue;
        s.seen.add(String(m.id));
        const item = messageItem(m);
        let later = log.lastElementChild;
        while (later && Number(later.getAttribute('data-id')) > Number(m.id)) later = later.previousElementSibling;
        log.insertBefore(item, later ? later.nextElementSibling : log.firstElementChild);
        added = true;
        mine = mine || m.sender_kind === 'contact';
      }
      if (!added) return;
      T.empty.hidden = true;
      if (nearBottom || mine) log.scrollTop = log.scrollHeight;
    }

    // Fetches what is new in the open thread; resolves to how long to wait before the next poll,
    // or null when polling should stop.
    async function loadMessages() {
      const id = s.session && s.session.id;
      if (id == null) return POLL_MS;
      try {
        const data = await authed('GET', messagesPath(id), {query: {after: s.lastId}});
        const results = (data && data.results) || [];
        if (s.session && s.session.id === id) appendMessages(results, true);
        clearStatus('poll');
        if (results.length >= THREAD_PAGE) return 0; // a long thread: fetch the rest at once
      } catch (err) {
        if (err.status === 404 && s.session && s.session.id === id) {
          showHome();
          setStatus('That conversation is no longer available.', 'notice');
        } else {
          report(err, 'poll');
        }
        // Still refused after authed()'s recovery: the widget token (rotated away) or an expired
        // verified token. Asking every 3 s would be refused the same way; a send or reopening asks again.
        if (err.status === 401) return null;
        if (err.retryAfter) return Math.max(POLL_MS, err.retryAfter * 1000);
      }
      return POLL_MS;
    }

    function refreshThread() {
      const gen = ++s.pollGen;
      loadMessages().then((wait) => { if (gen === s.pollGen) schedulePoll(wait); });
    }

    // Polls only while the panel is open on a thread that exists; one timer chain at a time.
    function schedulePoll(delay) {
      stopPolling();
      if (delay == null || s.dead || s.expired || !s.isOpen || s.view !== 'thread' || !s.session || s.session.id == null) return;
      const gen = s.pollGen;
      s.pollTimer = setTimeout(async () => {
        s.pollTimer = null;
        const wait = await loadMessages();
        if (gen === s.pollGen) schedulePoll(wait);
      }, delay);
    }

    function stopPolling() {
      s.pollGen++;
      clearTimeout(s.pollTimer);
      s.pollTimer = null;
    }

    async function sendMessage() {
      const T = s.thread;
      const text = T ? T.input.value : ''; // sent as typed: indentation and line breaks are the visitor's
      if (!text.trim() || s.sending) return;
      if (Array.from(text).length > MAX_MESSAGE) return setStatus('Messages are limited to 10,000 characters.', 'send');
      s.sending = true;
      T.send.disabled = true;
      T.input.value = ''; // the visitor may already type the next message
      try {
        if (s.session.id == null) { // a new conversation starts with its first message
          let created;
          try {
            created = await createSession(null);
          } catch (err) {
            if (s.thread === T && await askForFields(err, null, text)) return;
            throw err;
          }
          if (s.thread !== T) return;
          s.session = {id: created.id, status: created.status || 'open'};
        }
        const msg = await authed('POST', messagesPath(s.session.id), {body: {text}});
        if (s.thread !== T) return;
        appendMessages([msg]);
        clearStatus('send');
        refreshThread(); // whatever arrived before it (an agent's reply) is fetched now
      } catch (err) {
        if (s.thread === T) T.input.value = text + T.input.value;
        report(err, 'send');
      } finally {
        s.sending = false;
        T.send.disabled = false;
      }
    }

    // ---- public ----

    function open() {
      if (s.dead || s.isOpen) return;
      s.isOpen = true;
      panel.hidden = false;
      if (launcher) launcher.setAttribute('aria-expanded', 'true');
      if (!s.config && !s.starting) start().catch(noop); // config failed before: try again
      if (s.view === 'thread') {
        refreshThread();
        s.thread.input.focus();
      } else if (s.view === 'list') {
        showList(true);
      } else {
        (body.querySelector('button, input, select, textarea') || closeBtn).focus();
      }
    }

    function close() {
      if (s.dead || !s.isOpen) return;
      const hadFocus = panel.contains(document.activeElement);
      s.isOpen = false;
      stopPolling();
      clearTimeout(s.retryTimer);
      panel.hidden = true;
      if (launcher) launcher.setAttribute('aria-expanded', 'false');
      if (launcher && hadFocus) launcher.focus();
    }

    async function logout() {
      if (s.dead) return;
      stopPolling();
      await serial(noop).catch(noop); // a mint in flight lands first, and is revoked below
      const token = s.token || (user.token ? bareToken(user.token) : null);
      // A verified visitor's browser may still hold the device token an adoption failed to take
      // over (a 429 or 5xx keeps it for the next try): it is revoked too, not only forgotten.
      const device = store ? store.get('token') : null;
      for (const t of new Set([token, device])) {
        if (!t) continue;
        try { await request('POST', '/widget/logout', {token: t}); } catch (e) { /* revoking is best effort */ }
      }
      if (s.dead) return;
      if (store) STORED.forEach(store.del);
      else s.forgetDevice = true; // the config has not named the org yet: forget once it does
      for (const k of Object.keys(user)) delete user[k];
      Object.assign(s, {mode: 'anonymous', token: null, trust: null, contactId: null, externalId: null, collected: null,
        expired: false, next: null, signinRequired: !!(s.config && s.config.requireVerifiedIdentity)});
      setStatus('');
      showHome();
    }

    function destroy() {
      if (s.dead) return;
      s.dead = true;
      stopPolling();
      clearTimeout(s.retryTimer);
      if (aborter) aborter.abort();
      root.remove();
      removeStyles();
    }

    const state = () => ({
      trust: s.token ? s.trust : null,
      externalId: s.mode === 'verified' ? user.externalId || null : s.externalId,
      contactId: s.token ? s.contactId : null,
    });

    async function start() {
      s.starting = true;
      clearTimeout(s.retryTimer);
      try {
        if (!s.config) {
          s.config = (await request('GET', '/widget/config')) || {};
          await bindStore(s.config.org && s.config.org.id);
          applyConfig();
        }
        await establishIdentity();
        clearStatus('start');
      } catch (err) {
        report(err, 'start');
        if (!s.config) retryConfig(err);
        throw err;
      } finally {
        s.starting = false;
        if (!s.dead && (s.view === 'loading' || s.view === 'list')) showHome();
      }
    }

    // Nothing works without the config, so while the panel is open a failed load is tried again:
    // after the server's Retry-After, else after 3 s, doubling up to 60 s. `ready` stays the first
    // attempt's outcome; opening the panel again tries at once.
    function retryConfig(err) {
      const lasting = err.status && err.status < 500 && err.status !== 429; // e.g. an unknown widget token
      if (s.dead || !s.isOpen || !(err instanceof ApiError) || lasting) return;
      s.retryMs = Math.min(s.retryMs ? s.retryMs * 2 : CONFIG_RETRY_MS[0], CONFIG_RETRY_MS[1]);
      s.retryTimer = setTimeout(() => {
        s.retryTimer = null;
        if (!s.dead && s.isOpen && !s.config && !s.starting) start().catch(noop);
      }, err.retryAfter ? err.retryAfter * 1000 : s.retryMs);
    }

    showHome();
    const ready = start(); // before open(), which would otherwise start a second time
    ready.catch(noop);
    if (opts.open === true || (inline && opts.open !== false)) open();
    return {ready, open, close, logout, destroy, state};
  }

  // ---- global ----

  function deferred() {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    promise.catch(noop);
    return {promise, resolve};
  }

  let current = null;
  let pending = deferred(); // what `ready` is before init, or between destroy and the next init

  const ChatShield = {
    version: VERSION,
    get ready() { return current ? current.ready : pending.promise; },
    init(options) {
      if (!options || typeof options.widgetToken !== 'string' || !options.widgetToken) {
        throw new TypeError('ChatShield.init: options.widgetToken is required');
      }
      if (current) ChatShield.destroy();
      current = createWidget(options);
      pending.resolve(current.ready);
      return current.ready;
    },
    logout: () => (current ? current.logout() : Promise.resolve()),
    open: () => { if (current) current.open(); },
    close: () => { if (current) current.close(); },
    destroy() {
      if (!current) return;
      current.destroy();
      current = null;
      pending = deferred();
    },
    _state: () => (current ? current.state() : {trust: null, externalId: null, contactId: null}),
  };

  global.ChatShield = ChatShield;
})(window);
