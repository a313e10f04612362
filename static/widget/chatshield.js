/*!
 * chatshield.js — the embeddable live-chat widget of a chatshield identity server.
 *
 * One script tag, no dependencies, no build step (plain ES2017). It talks only to `apiBase`
 * (default: the origin this script was served from) over the /widget/* JSON routes of SPEC §3.1,
 * and injects its own styles (scoped under `.cs-root`, class names prefixed `cs-`).
 *
 *   <script src="https://chat.example.com/static/widget/chatshield.js"></script>
 *   <script>ChatShield.init({widgetToken: "wgt_…"});</script>
 *
 * Identity models (SPEC §2):
 *   anonymous     no details: mints a contact token once and keeps it per org in localStorage
 *                 (`chatshield:<widgetToken>:token`); a reload reuses it.
 *   non-verified  `collectUserData` form (method "collect_form") or `user.data` / `user.customData`
 *                 from the page (method "browser"). Anyone can type any email: never trusted.
 *   verified      `user.token`, minted by the customer's backend. Never minted or stored here; on a
 *                 401 `onTokenExpired()` may hand over a fresh one, else a quiet "expired" state.
 *                 A device token still in localStorage is offered once to /widget/contacts/adopt.
 *
 * Decisions:
 *   - A stored device token is always sent as Authorization when minting, so the server keeps the
 *     same contact and device; a stored token refused with 401 is dropped and a fresh one minted.
 *   - A generated externalId is only used by anonymous / non-verified contacts. externalId narrows
 *     history, and a verified contact's history spans devices, so a verified widget sends only the
 *     externalId the page gave.
 *   - Visitor and agent text is only ever inserted with textContent.
 *
 * API: ChatShield.init(options) → ready promise, .logout(), .open(), .close(), .destroy(),
 *      .ready, .version, ._state() (for tests).
 */
(function (global) {
  'use strict';
  if (global.ChatShield && global.ChatShield.version) return;

  const VERSION = '1.0.0';
  const POLL_MS = 3000;
  const MAX_MESSAGE = 10000;
  const KINDS = ['contact', 'agent', 'system'];
  const FIELD_TYPES = ['text', 'email', 'number', 'select', 'checkbox'];
  const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const DEAD = new Error('ChatShield was destroyed');
  const noop = () => {};

  // document.currentScript is only set while this file first runs.
  const scriptOrigin = (function () {
    try {
      const src = document.currentScript && document.currentScript.src;
      const origin = src ? new URL(src, location.href).origin : '';
      return origin === 'null' ? '' : origin;
    } catch (e) {
      return '';
    }
  })();

  const CSS = `
.cs-root{--cs-primary:#2563eb;--cs-on-primary:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;text-align:left}
.cs-root *,.cs-root *::before,.cs-root *::after{box-sizing:border-box}
.cs-root [hidden]{display:none!important}
.cs-root button,.cs-root input,.cs-root select,.cs-root textarea{font:inherit;color:inherit;margin:0}
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
.cs-field--checkbox .cs-field-error{flex-basis:100%}
.cs-req{color:#cf222e}
.cs-input{width:100%;padding:7px 9px;border:1px solid #8c959f;border-radius:6px;background:#fff}
.cs-input[type=checkbox]{width:auto}
.cs-input[aria-invalid=true]{border-color:#cf222e}
.cs-field-error{margin-top:3px;font-size:12px;color:#cf222e}
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
.cs-compose textarea{flex:1;min-height:40px;max-height:120px;padding:8px;resize:none;border:1px solid #8c959f;border-radius:8px;background:#fff}
.cs-status{padding:6px 12px;font-size:12px;color:#cf222e;border-top:1px solid #d0d7de}
.cs-status--info{color:#57606a}
.cs-status:empty{display:none}
.cs-sr{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}
`;

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const e = (body && body.error) || {};
      super(e.message || (status ? 'HTTP ' + status : 'Network error'));
      this.status = status;
      this.code = e.code || '';
      this.fields = e.fields || null;
      this.retryAfter = Number(retryAfter) || 0;
    }
  }

  // Constructed stylesheets are CSSOM, so a strict style-src CSP does not block them.
  function injectStyles(css) {
    try {
      if (Array.isArray(document.adoptedStyleSheets) && 'replaceSync' in CSSStyleSheet.prototype) {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(css);
        document.adoptedStyleSheets = document.adoptedStyleSheets.concat(sheet);
        return () => {
          document.adoptedStyleSheets = document.adoptedStyleSheets.filter((x) => x !== sheet);
        };
      }
    } catch (e) { /* fall back to a <style> element */ }
    const el = document.createElement('style');
    el.textContent = css;
    (document.head || document.documentElement).appendChild(el);
    return () => el.remove();
  }

  // localStorage when usable (private modes and sandboxed frames may refuse it), else memory.
  function makeStore(prefix) {
    const mem = {};
    let ls = null;
    try {
      ls = global.localStorage;
      ls.setItem(prefix + 'probe', '1');
      ls.removeItem(prefix + 'probe');
    } catch (e) {
      ls = null;
    }
    return {
      get(k) {
        if (k in mem) return mem[k];
        try { return ls ? ls.getItem(prefix + k) : null; } catch (e) { return null; }
      },
      set(k, v) {
        try { if (ls) { ls.setItem(prefix + k, v); return; } } catch (e) { /* quota: keep it in memory */ }
        mem[k] = v;
      },
      del(k) {
        delete mem[k];
        try { if (ls) ls.removeItem(prefix + k); } catch (e) { /* nothing to clean up */ }
      },
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

  // Reads (never verifies) a JWT's claims: only to know when to re-mint and what to report.
  function claims(token) {
    try {
      const p = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))) || {};
    } catch (e) {
      return {};
    }
  }

  // Re-mint once 90% of the token's lifetime has passed, so the device keeps its contact.
  function expiresSoon(token) {
    const c = claims(token);
    if (!c.exp) return false;
    const life = c.iat ? (c.exp - c.iat) * 1000 : 0;
    return c.exp * 1000 - Date.now() < Math.max(life / 10, 60000);
  }

  // Which details a stored token was minted with (FNV-1a), so a reload re-mints only on change.
  function fingerprint(obj) {
    const str = JSON.stringify(obj);
    let hash = 0x811c9dc5;
    for (let i = 0; i < str.length; i++) hash = Math.imul(hash ^ str.charCodeAt(i), 0x01000193) >>> 0;
    return hash.toString(36);
  }

  function textOn(hex) {
    const n = parseInt(hex.slice(1), 16);
    const lin = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
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

  // Tiledesk-style clients hand tokens around as "JWT <jwt>".
  const bareToken = (t) => String(t).trim().replace(/^(JWT|Bearer)\s+/i, '');

  let seq = 0;
  const uid = (p) => 'cs-' + p + '-' + (++seq);

  // Element builder: attributes via setAttribute, text via textContent, `on…` via listeners.
  function h(tag, props, children) {
    const el = document.createElement(tag);
    if (props) {
      for (const k of Object.keys(props)) {
        const v = props[k];
        if (v == null || v === false) continue;
        if (k === 'text') el.textContent = String(v);
        else if (k === 'class') el.className = v;
        else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children || []) {
      if (c != null && c !== false) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }

  function chatIcon() {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z');
    svg.appendChild(path);
    return svg;
  }

  function createWidget(opts) {
    const widgetToken = opts.widgetToken;
    const apiBase = String(opts.apiBase || scriptOrigin || location.origin).replace(/\/+$/, '');
    const store = makeStore('chatshield:' + widgetToken + ':');
    const aborter = typeof AbortController === 'function' ? new AbortController() : null;
    const inline = !!(opts.container && opts.container.appendChild);
    const s = {
      dead: false,
      user: Object.assign({}, opts.user),
      mode: 'anonymous', // anonymous | browser | verified
      config: null,
      collect: false,
      fields: [],
      signinRequired: false,
      expired: false,
      token: null,
      trust: null,
      contactId: null,
      externalId: null,
      collected: null, // {name, email} typed into the form during this page view
      queue: null,
      adoptTried: false,
      isOpen: false,
      view: null,
      list: null,
      thread: null,
      session: null,
      seen: new Set(),
      lastId: null,
      next: null,
      pollTimer: null,
      pollGen: 0,
      sending: false,
      pollFailed: false,
      starting: false,
    };
    s.mode = s.user.token ? 'verified' : (s.user.data || s.user.customData ? 'browser' : 'anonymous');

    // ---- HTTP -------------------------------------------------------------------------------

    async function request(method, path, o) {
      o = o || {};
      if (s.dead) throw DEAD;
      let url = apiBase + path;
      if (o.query) {
        const q = new URLSearchParams();
        for (const k of Object.keys(o.query)) if (o.query[k] != null && o.query[k] !== '') q.set(k, o.query[k]);
        if (String(q)) url += '?' + q;
      }
      const headers = {'X-Widget-Token': widgetToken, Accept: 'application/json'};
      if (o.token) headers.Authorization = 'Bearer ' + o.token;
      const init = {method, headers, credentials: 'omit', cache: 'no-store'};
      if (aborter) init.signal = aborter.signal;
      if (o.body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(o.body);
      }
      let res;
      try {
        res = await fetch(url, init);
      } catch (e) {
        throw s.dead ? DEAD : new ApiError(0, null);
      }
      let data = null;
      if (res.status !== 204) {
        try { const t = await res.text(); data = t ? JSON.parse(t) : null; } catch (e) { data = null; }
      }
      if (s.dead) throw DEAD;
      if (!res.ok) throw new ApiError(res.status, data, res.headers.get('Retry-After'));
      return data;
    }

    // Identity changes (mint, refresh) run one at a time; each step re-checks state when it runs.
    function serial(fn) {
      const run = (s.queue || Promise.resolve()).catch(noop).then(fn);
      s.queue = run;
      return run;
    }

    function expiredError() {
      return new ApiError(401, {error: {code: 'token_expired', message: 'Your chat session has expired.'}});
    }

    function ensureToken() {
      return serial(async () => {
        if (s.token) return;
        if (s.mode === 'verified' || s.expired) throw expiredError();
        if (s.signinRequired) {
          throw new ApiError(403, {error: {code: 'verification_required', message: 'Please sign in to chat.'}});
        }
        await mint(baseDetails());
      });
    }

    // A call with the contact token; a 401 gets one recovery (re-mint or onTokenExpired) and retry.
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
          forgetToken();
          await mint(baseDetails());
          return;
        }
        if (s.expired) throw expiredError();
        let fresh = null;
        if (typeof opts.onTokenExpired === 'function') {
          try { fresh = await opts.onTokenExpired(); } catch (e) { fresh = null; }
        }
        if (s.dead) throw DEAD;
        if (typeof fresh === 'string' && fresh.trim() && bareToken(fresh) !== used) {
          s.token = bareToken(fresh);
          s.trust = claims(fresh).trust || 'verified';
          return;
        }
        markExpired();
        throw expiredError();
      });
    }

    // ---- identity ---------------------------------------------------------------------------

    function pageDetails() {
      const d = {};
      const data = s.user.data || {};
      if (typeof data.name === 'string' && data.name.trim()) d.name = data.name.trim();
      if (typeof data.email === 'string' && data.email.trim()) d.email = data.email.trim();
      if (s.user.customData && typeof s.user.customData === 'object') d.customData = s.user.customData;
      return d;
    }

    function baseDetails() {
      if (s.collected) return Object.assign(pageDetails(), s.collected, {method: 'collect_form'});
      if (s.mode === 'browser') return Object.assign(pageDetails(), {method: 'browser'});
      return {};
    }

    function readMeta() {
      try { return JSON.parse(store.get('meta')) || {}; } catch (e) { return {}; }
    }

    function forgetToken() {
      store.del('token');
      store.del('meta');
      if (s.mode !== 'verified') s.token = null;
    }

    function ensureExternalId() {
      if (!s.externalId) {
        s.externalId = s.user.externalId || store.get('externalId') || uuid();
        if (!s.user.externalId) store.set('externalId', s.externalId);
      }
      return s.externalId;
    }

    function sessionExternalId() {
      return s.mode === 'verified' ? (s.user.externalId || null) : ensureExternalId();
    }

    // Only called for anonymous / non-verified contacts: verified tokens are never minted here.
    async function mint(details) {
      const body = Object.assign({externalId: ensureExternalId()}, details);
      const previous = s.token || store.get('token');
      let res;
      try {
        res = await request('POST', '/widget/contacts/unverified', {body, token: previous});
      } catch (err) {
        if (!(previous && err.status === 401)) throw err;
        forgetToken();
        res = await request('POST', '/widget/contacts/unverified', {body});
      }
      const contact = res.contact || {};
      s.token = res.token;
      s.trust = contact.trust || claims(res.token).trust || null;
      s.contactId = contact.id != null ? contact.id : (claims(res.token).sub || null);
      store.set('token', res.token);
      store.set('meta', JSON.stringify({contactId: s.contactId, trust: s.trust, fp: fingerprint(details)}));
      if (res.externalId && res.externalId !== s.externalId && !s.user.externalId) {
        s.externalId = res.externalId;
        store.set('externalId', res.externalId);
      }
    }

    async function establishIdentity() {
      if (s.mode === 'verified') {
        s.token = bareToken(s.user.token);
        s.trust = claims(s.token).trust || 'verified';
        s.externalId = s.user.externalId || null;
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
      await serial(async () => {
        const stored = store.get('token');
        const meta = readMeta();
        const details = baseDetails();
        if (stored && !expiresSoon(stored) && (s.mode === 'anonymous' || meta.fp === fingerprint(details))) {
          s.token = stored;
          s.trust = meta.trust || claims(stored).trust || null;
          s.contactId = meta.contactId != null ? meta.contactId : (claims(stored).sub || null);
          return;
        }
        await mint(details);
      });
    }

    // SPEC §2 rule 2: the only upgrade path is an explicit adoption by the same browser.
    async function adoptDeviceHistory() {
      const previous = store.get('token');
      if (!previous || s.adoptTried) return;
      s.adoptTried = true;
      try {
        await authed('POST', '/widget/contacts/adopt', {body: {previousToken: previous}});
        forgetToken();
      } catch (err) {
        // Keep the token only when a later visit could still succeed.
        const retryable = !err.status || err.status >= 500 || err.status === 401 || err.status === 429;
        if (!retryable) forgetToken();
      }
    }

    function markExpired() {
      if (s.expired) return;
      s.expired = true;
      s.token = null;
      s.trust = null;
      stopPolling();
      if (!s.dead) showHome();
    }

    // ---- DOM --------------------------------------------------------------------------------

    const removeStyles = injectStyles(CSS);
    const panelId = uid('panel');
    const titleId = uid('title');
    const root = h('div', {class: 'cs-root' + (inline ? ' cs-root--inline' : ''), 'data-testid': 'cs-root'});
    const title = h('h2', {class: 'cs-title', id: titleId, text: 'Chat'});
    const back = h('button', {
      type: 'button', class: 'cs-icon-btn cs-back', 'data-testid': 'cs-back',
      'aria-label': 'Back to conversations', text: '\u2190', hidden: true, onclick: () => showHome(true),
    });
    const closeBtn = h('button', {
      type: 'button', class: 'cs-icon-btn cs-close', 'data-testid': 'cs-close',
      'aria-label': 'Close chat', text: '\u00d7', hidden: inline, onclick: () => close(),
    });
    const body = h('div', {class: 'cs-body'});
    const statusEl = h('div', {class: 'cs-status', role: 'status', 'aria-live': 'polite', 'data-testid': 'cs-status'});
    const panel = h('section', {
      class: 'cs-panel', id: panelId, role: 'dialog', 'aria-labelledby': titleId,
      'data-testid': 'cs-panel', hidden: true,
    }, [h('div', {class: 'cs-header'}, [back, title, closeBtn]), body, statusEl]);
    const launcher = inline ? null : h('button', {
      type: 'button', class: 'cs-launcher', 'data-testid': 'cs-launcher', 'aria-label': 'Open chat',
      'aria-expanded': 'false', 'aria-controls': panelId, onclick: () => (s.isOpen ? close() : open()),
    }, [chatIcon()]);
    if (launcher) root.appendChild(launcher);
    root.appendChild(panel);
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && s.isOpen && !inline) {
        e.preventDefault();
        close();
      }
    });
    (inline ? opts.container : document.body).appendChild(root);

    function setStatus(text, kind) {
      statusEl.textContent = text || '';
      statusEl.className = 'cs-status' + (kind === 'info' ? ' cs-status--info' : '');
    }

    function report(err) {
      if (s.dead || err === DEAD) return;
      if (s.expired) return showHome();
      if (!(err instanceof ApiError)) {
        if (global.console) console.error('ChatShield:', err);
        return setStatus('Something went wrong.');
      }
      if (err.code === 'verification_required') return showHome();
      if (!err.status) return setStatus("Can't reach the chat server. Check your connection and try again.");
      if (err.status === 429) return setStatus('Too many requests. Please wait a moment and try again.');
      if (err.status >= 500) return setStatus('The chat server had a problem. Please try again.');
      setStatus(err.message || 'Something went wrong.');
    }

    function setView(name, el, focusEl) {
      s.view = name;
      if (name !== 'thread') {
        stopPolling();
        s.thread = null;
      }
      if (name !== 'list') s.list = null;
      while (body.firstChild) body.removeChild(body.firstChild);
      body.appendChild(el);
      back.hidden = !(name === 'thread' || name === 'form');
      if (focusEl && s.isOpen) focusEl.focus();
    }

    function applyConfig() {
      const cfg = s.config;
      const theme = cfg.theme || {};
      title.textContent = theme.title || (cfg.org && cfg.org.name) || 'Chat';
      if (typeof theme.primaryColor === 'string' && /^#[0-9a-f]{6}$/i.test(theme.primaryColor)) {
        root.style.setProperty('--cs-primary', theme.primaryColor);
        root.style.setProperty('--cs-on-primary', textOn(theme.primaryColor));
      }
      s.collect = typeof opts.collectUserData === 'boolean' ? opts.collectUserData : !!cfg.collectUserData;
      const fields = Array.isArray(opts.extraDataCollectionFields) ? opts.extraDataCollectionFields
        : (Array.isArray(cfg.extraDataCollectionFields) ? cfg.extraDataCollectionFields : []);
      s.fields = fields.filter((f) => f && typeof f.name === 'string' && f.name);
    }

    function simpleView(testid, text) {
      return h('div', {class: 'cs-view', 'data-testid': testid}, [h('p', {class: 'cs-note', text})]);
    }

    // The view a visitor lands on: the conversation list, or why there is none.
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

    // ---- conversation list ------------------------------------------------------------------

    function showList(focus) {
      const newBtn = h('button', {
        type: 'button', class: 'cs-btn cs-new', 'data-testid': 'cs-new-conversation',
        text: 'New conversation', onclick: newConversation,
      });
      const L = {
        ul: h('ul', {class: 'cs-conversations', 'data-testid': 'cs-conversations', 'aria-label': 'Your conversations'}),
        empty: h('p', {class: 'cs-note', 'data-testid': 'cs-empty', text: 'No conversations yet.', hidden: true}),
        more: h('button', {
          type: 'button', class: 'cs-btn cs-btn--ghost cs-load-more', 'data-testid': 'cs-load-more',
          text: 'Load more', hidden: true, onclick: () => loadConversations(true),
        }),
      };
      setView('list', h('div', {class: 'cs-view cs-view--list', 'data-testid': 'cs-list'}, [newBtn, L.ul, L.empty, L.more]),
        focus ? newBtn : null);
      s.list = L;
      if (s.isOpen) loadConversations(false);
    }

    async function loadConversations(more) {
      const L = s.list;
      if (!L) return;
      if (!s.token) { // nothing minted yet (e.g. after logout): nothing to list
        L.empty.hidden = false;
        return;
      }
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
        setStatus('');
      } catch (err) {
        report(err);
      } finally {
        L.more.disabled = false;
      }
    }

    function conversationItem(c) {
      const last = c.last_message;
      const preview = last ? (last.sender_kind === 'contact' ? 'You: ' : '') + last.text : 'No messages yet';
      const status = c.status && c.status !== 'open' ? h('span', {class: 'cs-badge', text: c.status}) : null;
      return h('li', null, [h('button', {
        type: 'button', class: 'cs-conversation', 'data-testid': 'cs-conversation',
        'data-id': c.id, 'data-status': c.status, onclick: () => openThread(c),
      }, [
        h('span', {class: 'cs-conv-preview', text: preview}),
        h('span', {class: 'cs-conv-meta'}, [h('span', {text: fmtTime(c.last_message_at || c.created_at)}), status]),
      ])]);
    }

    function newConversation() {
      setStatus('');
      const identityInputs = s.mode !== 'verified';
      if (s.collect && (identityInputs || s.fields.length)) showForm(identityInputs);
      else openThread(null);
    }

    // ---- pre-chat form (collectUserData) ----------------------------------------------------

    function fieldRow(f, value) {
      const type = FIELD_TYPES.indexOf(f.type) >= 0 ? f.type : 'text';
      const id = uid('field');
      const err = h('div', {class: 'cs-field-error', id: id + '-error'});
      const attrs = {
        id, name: f.name, class: 'cs-input', 'data-testid': 'cs-field-' + f.name,
        required: !!f.required, 'aria-describedby': err.id, autocomplete: f.autocomplete,
      };
      const label = h('label', {for: id}, [String(f.label || f.name), f.required ? h('span', {class: 'cs-req', 'aria-hidden': 'true', text: ' *'}) : null]);
      let input;
      if (type === 'select') {
        input = h('select', attrs, [h('option', {value: '', text: 'Choose\u2026'})]);
        for (const o of Array.isArray(f.options) ? f.options : []) {
          const isObj = o !== null && typeof o === 'object';
          const v = isObj ? o.value : o;
          input.appendChild(h('option', {value: String(v), text: String(isObj && o.label != null ? o.label : v)}));
        }
      } else {
        input = h('input', Object.assign({type}, attrs));
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

    function showForm(identityInputs) {
      const prefill = s.collected || opts.prefillUserData || (s.mode === 'browser' ? s.user.data : null) || {};
      const rows = [];
      if (identityInputs) {
        rows.push(fieldRow({name: 'name', label: 'Name', type: 'text', required: true, autocomplete: 'name'}, prefill.name));
        rows.push(fieldRow({name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'email'}, prefill.email));
      }
      for (const f of s.fields) {
        if (!rows.some((r) => r.field.name === f.name)) rows.push(fieldRow(f));
      }
      const submit = h('button', {type: 'submit', class: 'cs-btn', 'data-testid': 'cs-form-submit', text: 'Start conversation'});
      const intro = identityInputs ? 'Before we start, please tell us how to reach you.' : 'Before we start, please answer a few questions.';
      const form = h('form', {class: 'cs-view cs-form', 'data-testid': 'cs-form', novalidate: true, 'aria-label': 'Your details'},
        [h('p', {class: 'cs-note', text: intro})].concat(rows.map((r) => r.row), [submit]));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        submitForm(rows, identityInputs, submit);
      });
      setView('form', form, rows[0].input);
      // A returning non-verified visitor: offer back what they typed last time.
      if (identityInputs && !prefill.name && !prefill.email && s.trust === 'non_verified') {
        authed('GET', '/widget/me').then((me) => {
          if (s.view !== 'form' || !me) return;
          for (const r of rows.slice(0, 2)) if (!r.input.value && me[r.field.name]) r.input.value = me[r.field.name];
        }, noop);
      }
    }

    async function submitForm(rows, identityInputs, submit) {
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
        if (msg && !firstBad) firstBad = r.input;
        values[r.field.name] = r.type === 'number' && v !== '' ? Number(v) : v;
      }
      if (firstBad) {
        setStatus('Please check the highlighted fields.');
        firstBad.focus();
        return;
      }
      const answers = {};
      for (const f of s.fields) {
        const v = values[f.name];
        if (v !== '' && v != null) answers[f.name] = v;
      }
      submit.disabled = true;
      setStatus('');
      try {
        if (identityInputs) {
          s.collected = {};
          if (values.name) s.collected.name = values.name;
          if (values.email) s.collected.email = values.email;
          const details = baseDetails();
          await serial(() => (s.token && readMeta().fp === fingerprint(details) ? null : mint(details)));
        }
        const body = {};
        const externalId = sessionExternalId();
        if (externalId) body.externalId = externalId;
        if (Object.keys(answers).length) body.fields = answers;
        const created = await authed('POST', '/widget/sessions', {body});
        if (!s.dead && s.view === 'form') openThread(created);
      } catch (err) {
        if (s.dead) return;
        const shown = err.fields && showServerErrors(rows, err.fields);
        if (shown) setStatus('Please check the highlighted fields.');
        else report(err);
      } finally {
        submit.disabled = false;
      }
    }

    // Validation errors may come as {email: [...]}, {"fields.topic": [...]} or {fields: {topic: [...]}}.
    function showServerErrors(rows, fields) {
      let shown = false;
      for (const key of Object.keys(fields)) {
        const val = fields[key];
        if (val && typeof val === 'object' && !Array.isArray(val)) {
          shown = showServerErrors(rows, val) || shown;
          continue;
        }
        const r = rows.find((x) => x.field.name === key.replace(/^fields\./, ''));
        if (r) {
          setFieldError(r, [].concat(val).join(' '));
          shown = true;
        }
      }
      return shown;
    }

    // ---- thread -----------------------------------------------------------------------------

    function openThread(c) {
      setStatus('');
      s.session = {id: c && c.id != null ? c.id : null, status: (c && c.status) || 'open'};
      s.seen = new Set();
      s.lastId = null;
      const inputId = uid('message');
      const log = h('ol', {class: 'cs-messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat history', 'data-testid': 'cs-messages'});
      const empty = h('p', {class: 'cs-note', 'data-testid': 'cs-thread-empty', text: 'Send a message to start the conversation.', hidden: s.session.id != null});
      const input = h('textarea', {
        id: inputId, name: 'message', rows: 2, maxlength: MAX_MESSAGE, class: 'cs-input',
        'data-testid': 'cs-message-input', placeholder: 'Type your message\u2026',
      });
      const send = h('button', {type: 'submit', class: 'cs-btn cs-send', 'data-testid': 'cs-send', text: 'Send'});
      const compose = h('form', {class: 'cs-compose', 'data-testid': 'cs-compose'},
        [h('label', {class: 'cs-sr', for: inputId, text: 'Message'}), input, send]);
      compose.addEventListener('submit', (e) => {
        e.preventDefault();
        sendMessage();
      });
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
          e.preventDefault();
          sendMessage();
        }
      });
      setView('thread', h('div', {class: 'cs-view cs-view--thread', 'data-testid': 'cs-thread'}, [empty, log, compose]), input);
      s.thread = {log, empty, input, send};
      if (s.session.id != null) refreshThread();
    }

    function messagesPath(id) {
      return '/widget/sessions/' + encodeURIComponent(id) + '/messages';
    }

    function messageItem(m) {
      const kind = KINDS.indexOf(m.sender_kind) >= 0 ? m.sender_kind : 'agent';
      const who = kind === 'contact' ? 'You' : (m.sender_name || (kind === 'agent' ? 'Agent' : ''));
      return h('li', {class: 'cs-message cs-message--' + kind, 'data-testid': 'cs-message', 'data-sender-kind': kind, 'data-id': m.id}, [
        kind === 'contact' ? h('span', {class: 'cs-sr', text: 'You: '}) : (who ? h('div', {class: 'cs-message-meta', text: who}) : null),
        h('div', {class: 'cs-message-text', text: m.text == null ? '' : m.text}),
        m.created_at ? h('time', {class: 'cs-message-time', datetime: m.created_at, text: fmtTime(m.created_at)}) : null,
      ]);
    }

    function appendMessages(list) {
      const T = s.thread;
      if (!T || !Array.isArray(list)) return;
      const log = T.log;
      const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
      let added = false;
      let mine = false;
      for (const m of list) {
        if (!m || m.id == null) continue;
        s.lastId = m.id;
        if (s.seen.has(String(m.id))) continue;
        s.seen.add(String(m.id));
        log.appendChild(messageItem(m));
        added = true;
        mine = mine || m.sender_kind === 'contact';
      }
      if (!added) return;
      T.empty.hidden = true;
      if (nearBottom || mine) log.scrollTop = log.scrollHeight;
    }

    // Fetches what is new in the open thread; returns how long to wait before the next poll.
    async function loadMessages() {
      const id = s.session && s.session.id;
      if (id == null) return POLL_MS;
      try {
        const data = await authed('GET', messagesPath(id), {query: {after: s.lastId}});
        if (s.session && s.session.id === id) appendMessages(data && data.results);
        if (s.pollFailed) setStatus('');
        s.pollFailed = false;
      } catch (err) {
        s.pollFailed = true;
        if (err.status === 404 && s.session && s.session.id === id) {
          showHome();
          setStatus('That conversation is no longer available.');
        } else {
          report(err);
        }
        if (err.retryAfter) return Math.max(POLL_MS, err.retryAfter * 1000);
      }
      return POLL_MS;
    }

    function refreshThread() {
      const gen = ++s.pollGen;
      loadMessages().then((wait) => {
        if (gen === s.pollGen) schedulePoll(wait);
      });
    }

    // Polls only while the panel is open on a thread that exists; one timer chain at a time.
    function schedulePoll(delay) {
      stopPolling();
      if (s.dead || s.expired || !s.isOpen || s.view !== 'thread' || !s.session || s.session.id == null) return;
      const gen = s.pollGen;
      s.pollTimer = setTimeout(async () => {
        s.pollTimer = null;
        const wait = await loadMessages();
        if (gen === s.pollGen) schedulePoll(wait);
      }, delay || POLL_MS);
    }

    function stopPolling() {
      s.pollGen++;
      if (s.pollTimer) clearTimeout(s.pollTimer);
      s.pollTimer = null;
    }

    async function sendMessage() {
      const T = s.thread;
      if (!T || s.sending) return;
      const text = T.input.value.trim();
      if (!text) return;
      if (text.length > MAX_MESSAGE) return setStatus('Messages are limited to 10,000 characters.');
      s.sending = true;
      T.send.disabled = true;
      try {
        if (s.session.id == null) {
          const body = {};
          const externalId = sessionExternalId();
          if (externalId) body.externalId = externalId;
          const created = await authed('POST', '/widget/sessions', {body});
          if (s.thread !== T) return;
          s.session = {id: created.id, status: created.status || 'open'};
        }
        const msg = await authed('POST', messagesPath(s.session.id), {body: {text}});
        if (s.thread !== T) return;
        T.input.value = '';
        appendMessages([msg]);
        setStatus('');
        schedulePoll();
      } catch (err) {
        report(err);
      } finally {
        s.sending = false;
        T.send.disabled = false;
      }
    }

    // ---- public -----------------------------------------------------------------------------

    function open() {
      if (s.dead || s.isOpen) return;
      s.isOpen = true;
      panel.hidden = false;
      if (launcher) launcher.setAttribute('aria-expanded', 'true');
      if (!s.config && !s.starting) start().catch(noop);
      if (s.view === 'thread' && s.thread) {
        refreshThread();
        s.thread.input.focus();
      } else if (s.view === 'list') {
        showList(true);
      } else {
        const first = body.querySelector('button, input, select, textarea');
        (first || closeBtn).focus();
      }
    }

    function close() {
      if (s.dead || !s.isOpen) return;
      const hadFocus = panel.contains(document.activeElement);
      s.isOpen = false;
      stopPolling();
      panel.hidden = true;
      if (launcher) {
        launcher.setAttribute('aria-expanded', 'false');
        if (hadFocus) launcher.focus();
      }
    }

    async function logout() {
      if (s.dead) return;
      stopPolling();
      const token = s.token;
      if (token) {
        try { await request('POST', '/widget/logout', {token}); } catch (e) { /* revoke is best effort */ }
      }
      if (s.dead) return;
      store.del('token');
      store.del('meta');
      store.del('externalId');
      s.user = {};
      s.mode = 'anonymous';
      s.token = s.trust = s.contactId = s.externalId = s.collected = null;
      s.expired = false;
      s.next = null;
      s.signinRequired = !!(s.config && s.config.requireVerifiedIdentity);
      setStatus('');
      showHome();
    }

    function destroy() {
      if (s.dead) return;
      s.dead = true;
      stopPolling();
      if (aborter) aborter.abort();
      root.remove();
      removeStyles();
    }

    function state() {
      return {
        trust: s.token ? s.trust : null,
        externalId: s.mode === 'verified' ? (s.user.externalId || null) : s.externalId,
        contactId: s.token ? s.contactId : null,
      };
    }

    async function start() {
      s.starting = true;
      try {
        if (!s.config) {
          s.config = (await request('GET', '/widget/config')) || {};
          applyConfig();
        }
        await establishIdentity();
        if (!s.expired) setStatus('');
      } catch (err) {
        report(err);
        throw err;
      } finally {
        s.starting = false;
        if (!s.dead && (s.view === 'loading' || s.view === 'list')) showHome();
      }
    }

    showHome();
    const ready = start(); // before open(), which would otherwise start a second time
    ready.catch(noop);
    if (opts.open === true || (inline && opts.open !== false)) open();

    return {ready, open, close, logout, destroy, state};
  }

  // ---- global ---------------------------------------------------------------------------------

  function deferred() {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    promise.catch(noop);
    return {promise, resolve};
  }

  let current = null;
  let pending = deferred(); // what `ready` is before init (or between destroy and init)

  const ChatShield = {
    version: VERSION,
    get ready() {
      return current ? current.ready : pending.promise;
    },
    init(options) {
      if (!options || typeof options.widgetToken !== 'string' || !options.widgetToken) {
        throw new TypeError('ChatShield.init: options.widgetToken is required');
      }
      if (current) ChatShield.destroy();
      current = createWidget(options);
      pending.resolve(current.ready);
      return current.ready;
    },
    logout() {
      return current ? current.logout() : Promise.resolve();
    },
    open() {
      if (current) current.open();
    },
    close() {
      if (current) current.close();
    },
    destroy() {
      if (!current) return;
      current.destroy();
      current = null;
      pending = deferred();
    },
    _state() {
      return current ? current.state() : {trust: null, externalId: null, contactId: null};
    },
  };

  global.ChatShield = ChatShield;
})(window);
