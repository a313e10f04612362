/*!
 * playground.js — drives /playground/: reads the options form, renders the embed snippet a
 * customer would paste, and restarts the widget (ChatShield.destroy + init) with the same options.
 * For the verified model it plays the customer's backend through the demo backend route.
 * body[data-pg-state] is "pending" from a change until the restarted widget is ready, then
 * "ready" (or "error"), so tests and people can tell when the corner widget caught up.
 */
(function () {
  'use strict';

  const cfg = JSON.parse(document.getElementById('pg-config').textContent);
  const form = document.getElementById('pg-options');
  const snippetEl = document.getElementById('pg-snippet');
  const snippetNote = document.getElementById('pg-snippet-note');
  const errorEl = form.querySelector('[data-testid="pg-error"]');
  const extraBlock = form.querySelector('[data-extra]');
  const storePrefix = 'chatshield:' + cfg.orgId + ':'; // the widget keeps its device per org
  const DEBOUNCE_MS = 350;

  // What collectUserData starts as when a model is picked; it can be toggled afterwards.
  const COLLECT_BY_MODEL = {anonymous: false, form: true, page: false, verified: false};

  let generation = 0;
  let timer = null;
  let lastReady = Promise.resolve();
  let verifiedToken = {key: null, token: null};

  const setState = (state) => { document.body.dataset.pgState = state; };

  function readOptions() {
    const f = form.elements;
    const text = (name) => f[name].value.trim();
    return {
      model: f.model.value || 'anonymous',
      name: text('name'),
      email: text('email'),
      userId: text('userId'),
      externalId: text('externalId'),
      collect: f.collectUserData.checked,
      prefill: f.prefill.checked,
      extraOn: f.extraOn.checked,
      extraJson: f.extraJson.value,
    };
  }

  function details(o) {
    const d = {};
    if (o.name) d.name = o.name;
    if (o.email) d.email = o.email;
    return d;
  }

  // Returns [fields, error]: the override the form asks for, or why it cannot be used.
  function extraFields(o) {
    if (!o.extraOn) return [null, null];
    let parsed;
    try { parsed = JSON.parse(o.extraJson || '[]'); } catch (e) { return [null, 'Extra fields: ' + e.message]; }
    if (!Array.isArray(parsed)) return [null, 'Extra fields must be a JSON array of {name, label, type, required}.'];
    return [parsed, null];
  }

  // ---- the embed snippet ----

  const IDENT = /^[A-Za-z_$][\w$]*$/;

  // The snippet is pasted into an inline <script>, which the HTML parser ends at the first
  // `</script` (and `<!--` changes how it reads on); JSON.stringify leaves both as typed. As
  // \u escapes these characters mean the same string to JS and nothing to HTML; U+2028/U+2029
  // end a line in a string literal before ES2019.
  const jsonInScript = (value) => JSON.stringify(value).replace(/[<>&\u2028\u2029]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

  // A JS literal with bare keys where possible: what a person would write by hand.
  function literal(value, indent) {
    const pad = '  '.repeat(indent + 1);
    const end = '  '.repeat(indent);
    if (Array.isArray(value)) {
      if (!value.length) return '[]';
      return '[\n' + value.map((v) => pad + literal(v, indent + 1)).join(',\n') + ',\n' + end + ']';
    }
    if (value && typeof value === 'object') {
      const keys = Object.keys(value);
      if (!keys.length) return '{}';
      const inline = keys.map((k) => key(k) + ': ' + literal(value[k], indent + 1)).join(', ');
      if (inline.length <= 60 && !inline.includes('\n')) return '{' + inline + '}';
      return '{\n' + keys.map((k) => pad + key(k) + ': ' + literal(value[k], indent + 1)).join(',\n') + ',\n' + end + '}';
    }
    return jsonInScript(value);
  }
  const key = (k) => (IDENT.test(k) ? k : jsonInScript(k));

  // Entries are [name, code] so the verified model can show code, not values, for its token.
  function initEntries(o) {
    const entries = [['widgetToken', literal(cfg.widgetToken, 2)]];
    const user = {};
    let userCode = null;
    if (o.model === 'page') {
      const d = details(o);
      if (Object.keys(d).length) user.data = d;
    }
    if (o.externalId) user.externalId = o.externalId;
    if (o.model === 'verified') {
      const rest = Object.keys(user).map((k) => ', ' + key(k) + ': ' + literal(user[k], 3)).join('');
      userCode = '{token: CHATSHIELD_TOKEN' + rest + '}';
    } else if (Object.keys(user).length) {
      userCode = literal(user, 2);
    }
    if (userCode) entries.push(['user', userCode]);
    entries.push(['collectUserData', String(o.collect)]);
    if (o.prefill && o.collect && o.model !== 'verified') {
      const d = details(o);
      if (Object.keys(d).length) entries.push(['prefillUserData', literal(d, 2)]);
    }
    const [fields] = extraFields(o);
    if (fields) entries.push(['extraDataCollectionFields', literal(fields, 2)]);
    if (o.model === 'verified') entries.push(['onTokenExpired', 'fetchChatshieldToken']);
    return entries;
  }

  function snippet(o) {
    const lines = ['<script src="' + cfg.scriptUrl + '"></script>', '<script>'];
    if (o.model === 'verified') {
      lines.push(
        '  // Your backend calls POST /widget/authenticate-user with its csk_ API key and',
        '  // renders the token it gets here; fetchChatshieldToken asks it for a fresh one.',
        '  const CHATSHIELD_TOKEN = "{{ token from your backend }}";',
        '  const fetchChatshieldToken = () =>',
        '    fetch("/your-backend/chatshield-token", {method: "POST"})',
        '      .then((r) => r.json()).then((d) => d.token);'
      );
    }
    lines.push('  ChatShield.init({');
    for (const [name, code] of initEntries(o)) lines.push('    ' + name + ': ' + code + ',');
    lines.push('  });', '</script>');
    return lines.join('\n');
  }

  function snippetHint(o) {
    if (o.model === 'verified') return 'Never put the API key in a page: only your backend holds it. The playground plays your backend through its demo route.';
    if (o.model === 'page') return 'Details passed by the page are not proof of identity: the contact stays non-verified.';
    if (o.model === 'form') return 'Typed details are not proof of identity: the contact stays non-verified.';
    return 'Paste it before </body>. The widget keeps its device token in localStorage.';
  }

  // ---- the live widget ----

  async function demoToken(o, fresh) {
    const cacheKey = JSON.stringify([o.email, o.name, o.userId]);
    if (!fresh && verifiedToken.key === cacheKey) return verifiedToken.token;
    const body = {email: o.email};
    if (o.name) body.name = o.name;
    if (o.userId) body.user_id = o.userId;
    const res = await fetch(cfg.demoBackendUrl, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const fields = err.fields ? ' (' + Object.keys(err.fields).map((k) => k + ': ' + [].concat(err.fields[k]).join(' ')).join('; ') + ')' : '';
      throw new Error('Demo backend: ' + (err.message || 'HTTP ' + res.status) + fields);
    }
    verifiedToken = {key: cacheKey, token: data.token};
    return data.token;
  }

  function widgetOptions(o, token) {
    const opts = {widgetToken: cfg.widgetToken, collectUserData: o.collect, user: {}};
    if (o.model === 'page') {
      const d = details(o);
      if (Object.keys(d).length) opts.user.data = d;
    }
    if (o.externalId) opts.user.externalId = o.externalId;
    if (o.model === 'verified') {
      opts.user.token = token;
      opts.onTokenExpired = () => demoToken(o, true);
    }
    if (o.prefill && o.collect && o.model !== 'verified') opts.prefillUserData = details(o);
    const [fields] = extraFields(o);
    if (fields) opts.extraDataCollectionFields = fields;
    return opts;
  }

  function panelOpen() {
    const panel = document.querySelector('[data-testid="cs-panel"]');
    return !!panel && !panel.hidden;
  }

  async function restart() {
    const mine = ++generation;
    const o = readOptions();
    const [, extraError] = extraFields(o);
    extraBlock.hidden = !o.extraOn;
    snippetEl.textContent = snippet(o);
    snippetNote.textContent = snippetHint(o);
    errorEl.textContent = '';
    const failed = (message) => {
      if (mine !== generation) return;
      errorEl.textContent = message;
      ChatShield.destroy();
      setState('error');
      showState();
    };
    if (extraError) return failed(extraError);
    let token = null;
    if (o.model === 'verified') {
      if (!cfg.demoMode) return failed('The verified model needs the demo backend: start the server with DEMO_MODE=true.');
      if (!o.email) return failed('The verified model needs an email: your backend always sends one.');
      try {
        token = await demoToken(o, false);
      } catch (e) {
        return failed(e.message);
      }
      if (mine !== generation) return;
    }
    // Let the previous start finish first, so a token it is minting gets stored and reused.
    await Promise.race([lastReady.catch(() => null), new Promise((r) => setTimeout(r, 3000))]);
    if (mine !== generation) return;
    const first = !document.querySelector('[data-testid="cs-root"]');
    const reopen = panelOpen() || (first && matchMedia('(min-width: 700px)').matches);
    ChatShield.destroy();
    const ready = ChatShield.init(widgetOptions(o, token));
    lastReady = ready;
    if (reopen) ChatShield.open();
    try {
      await ready;
      if (mine === generation) setState('ready');
    } catch (e) {
      if (mine === generation) setState('error');
    }
    showState();
  }

  function schedule(delay) {
    generation += 1; // a restart still in flight is superseded: it must not say "ready" now
    setState('pending');
    clearTimeout(timer);
    timer = setTimeout(restart, delay);
  }

  function showState() {
    const st = ChatShield._state();
    const set = (id, v) => { document.getElementById(id).textContent = v || '–'; };
    set('pg-state-trust', st.trust);
    set('pg-state-contact', st.contactId);
    set('pg-state-external', st.externalId);
    let stored = null;
    try { stored = localStorage.getItem(storePrefix + 'token'); } catch (e) { stored = null; }
    set('pg-state-stored', stored ? 'yes' : 'no');
  }

  form.addEventListener('submit', (e) => e.preventDefault());
  form.addEventListener('change', (e) => {
    if (e.target.name === 'model') form.elements.collectUserData.checked = COLLECT_BY_MODEL[e.target.value];
    schedule(e.target.type === 'radio' || e.target.type === 'checkbox' ? 0 : DEBOUNCE_MS);
  });
  form.addEventListener('input', (e) => {
    if (e.target.type !== 'radio' && e.target.type !== 'checkbox') schedule(DEBOUNCE_MS);
  });

  document.getElementById('pg-copy').addEventListener('click', async (e) => {
    const button = e.currentTarget;
    const text = snippetEl.textContent;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(snippetEl);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { ok = document.execCommand('copy'); } catch (err2) { ok = false; }
    }
    button.textContent = ok ? 'Copied' : 'Select and copy';
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
  document.getElementById('pg-restart').addEventListener('click', () => schedule(0));
  document.getElementById('pg-logout').addEventListener('click', async () => {
    await ChatShield.logout();
    showState();
  });
  document.getElementById('pg-forget').addEventListener('click', () => {
    ChatShield.destroy();
    for (const k of ['token', 'meta', 'externalId']) {
      try { localStorage.removeItem(storePrefix + k); } catch (e) { /* storage refused */ }
    }
    verifiedToken = {key: null, token: null};
    schedule(0);
  });

  // The widget changes its own state (sign-in, logout, expiry); keep the readout current.
  setInterval(showState, 1000);
  schedule(0);
})();
