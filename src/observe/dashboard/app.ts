/**
 * The dashboard's script (plain ES2020, run by the browser, not by Node).
 * It fetches /api/status every 5 seconds and renders it with DOM calls only
 * (textContent, never innerHTML), so container names and CA messages cannot
 * inject markup. Kept free of backticks and dollar-brace so it can live in
 * this template string.
 */
export const DASHBOARD_JS = `'use strict';
(function () {
  var REFRESH_MS = 5000;
  var DAY = 86400000;
  var timer = null;

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'text') n.textContent = attrs[k]; else n.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) n.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return n;
  }
  function day(iso) { return iso ? iso.slice(0, 10) : 'unknown'; }
  function minute(iso) { return iso ? iso.slice(0, 16).replace('T', ' ') + ' UTC' : 'unknown'; }
  function rel(iso, now) {
    var ms = Date.parse(iso) - now;
    var a = Math.abs(ms), s;
    if (a < 90000) s = Math.round(a / 1000) + ' s';
    else if (a < 5400000) s = Math.round(a / 60000) + ' min';
    else if (a < 2 * DAY) s = Math.round(a / 3600000) + ' h';
    else s = Math.round(a / DAY) + ' days';
    return ms >= 0 ? 'in ' + s : s + ' ago';
  }
  function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }
  var HEALTH_TEXT = { ok: 'OK', pending: 'In progress', warning: 'Warning', error: 'Problem', retired: 'Retired' };
  var STATE_TEXT = { valid: 'Valid', obtaining: 'Obtaining now', renewing: 'Renewing now', waiting: 'Waiting to retry', missing: 'No certificate yet', retired: 'Retired (no longer routed)' };

  function certLabel(c) {
    if (!c) return 'No certificate (plain HTTP route)';
    if (c.lastError && c.notAfter && c.daysLeft >= 0) return 'Renewal failed';
    if (c.lastError) return 'Obtaining failed';
    if (c.daysLeft !== undefined && c.daysLeft < 0) return 'Expired';
    return STATE_TEXT[c.state] || c.state;
  }

  function timeline(c, now) {
    if (!c || !c.notAfter) return null;
    var end = Date.parse(c.notAfter);
    var start = c.notBefore ? Date.parse(c.notBefore) : Math.min(now, c.renewAt ? Date.parse(c.renewAt) : now) - DAY;
    var renew = c.renewAt ? Date.parse(c.renewAt) : null;
    var lo = Math.min(start, now), hi = Math.max(end, now);
    var span = Math.max(hi - lo, 1);
    function pct(t) { return ((t - lo) / span * 100).toFixed(2) + '%'; }
    var bar = el('div', { 'class': 'bar' });
    var validEnd = renew !== null ? Math.min(renew, end) : end;
    var seg = el('div', { 'class': 'seg valid' });
    seg.style.left = pct(start); seg.style.width = ((validEnd - start) / span * 100).toFixed(2) + '%';
    bar.appendChild(seg);
    if (renew !== null && renew < end) {
      var w = el('div', { 'class': 'seg window' });
      w.style.left = pct(renew); w.style.width = ((end - renew) / span * 100).toFixed(2) + '%';
      bar.appendChild(w);
    }
    var mark = el('div', { 'class': 'now', title: 'now' });
    mark.style.left = 'calc(' + pct(now) + ' - 1px)';
    bar.appendChild(mark);
    var label = 'Certificate lifetime: issued ' + (c.notBefore ? day(c.notBefore) : 'unknown') +
      (renew !== null ? ', renewal window from ' + day(c.renewAt) : '') + ', expires ' + day(c.notAfter) +
      '; ' + plural(c.daysLeft, 'day', 'days') + ' left.';
    var ticks = el('div', { 'class': 'ticks', 'aria-hidden': 'true' }, [
      el('span', { text: 'Issued ' + (c.notBefore ? day(c.notBefore) : 'unknown') }),
      el('span', { 'class': 'legend' }, [el('span', { 'class': 'key valid' }), ' valid ', el('span', { 'class': 'key window' }), ' renewal window ', el('span', { 'class': 'key now-key' }), ' now']),
      el('span', { text: (renew !== null ? 'Renew from ' + day(c.renewAt) + ' · ' : '') + 'Expires ' + day(c.notAfter) })
    ]);
    return el('figure', { 'class': 'timeline', role: 'img', 'aria-label': label }, [bar, ticks]);
  }

  function renderAttention(doc, now) {
    var list = document.getElementById('attention-list');
    list.replaceChildren();
    (doc.attention || []).forEach(function (a) {
      var what = a.subject + ': ' + a.title + (a.acmeType ? ' (' + a.acmeType + ')' : '');
      list.appendChild(el('li', { 'data-severity': a.severity, 'data-kind': a.kind }, [
        el('div', { 'class': 'what', text: what }),
        el('p', { 'class': 'msg', text: a.message }),
        a.until ? el('p', { 'class': 'when', text: (a.kind === 'upstream' ? 'Tried again ' : a.kind === 'grace' ? 'Name dropped ' : 'Next attempt ') + rel(a.until, now) + ' (' + minute(a.until) + ')' }) : null
      ]));
    });
    document.getElementById('attention').hidden = !(doc.attention && doc.attention.length);
  }

  function renderName(r, now) {
    var c = r.certificate;
    var facts = el('dl', { 'class': 'facts' });
    function fact(k, v) { if (v) { facts.appendChild(el('dt', { text: k })); facts.appendChild(typeof v === 'string' ? el('dd', { text: v }) : el('dd', null, [v])); } }
    var ups = el('ul', { 'class': 'ups' });
    r.upstreams.forEach(function (u) {
      var t = u.url + (u.containerName ? ' (' + u.containerName + ')' : '') + (u.healthy ? ': up' : ': down' + (u.downUntil ? ', retried ' + rel(u.downUntil, now) : '')) +
        (u.check ? ', health check ' + u.check : '');
      ups.appendChild(el('li', { 'class': 'up', 'data-healthy': String(u.healthy), text: t }));
    });
    fact('Route', (r.https ? 'https://' : 'http://') + (r.host.indexOf(':') >= 0 ? '[' + r.host + ']' : r.host) + (r.https && r.redirect ? ' (HTTP redirects to HTTPS)' : ''));
    if (r.grace) fact('Grace period', 'No container is running. Requests get 503 until ' + minute(r.grace.until) + ' (' + rel(r.grace.until, now) + '), then the name is no longer served.');
    else fact('Upstreams', ups);
    if (c) {
      fact('Certificate', certLabel(c) + (c.issuer ? ', issuer ' + c.issuer : ''));
      if (c.notAfter) fact('Expires', minute(c.notAfter) + ' (' + plural(c.daysLeft, 'day', 'days') + ' left)');
      if (c.nextRenewal) fact('Next renewal', minute(c.nextRenewal.at) + ' (' + rel(c.nextRenewal.at, now) + '): ' + c.nextRenewal.why);
      if (c.rateLimitedUntil) fact('Rate limited until', minute(c.rateLimitedUntil));
      if (c.lastError) fact('Last error', el('span', { 'class': 'err', text: c.lastError.message + ' [' + (c.lastError.acmeType || c.lastError.code) + ']' }));
    }
    return el('article', { 'class': 'name', 'data-health': r.health, 'data-host': r.host, 'aria-labelledby': 'h-' + r.host }, [
      el('header', null, [
        el('h3', { id: 'h-' + r.host, text: r.host }),
        el('span', { 'class': 'badge', 'data-health': r.health, text: HEALTH_TEXT[r.health] || r.health })
      ]),
      facts,
      timeline(c, now)
    ]);
  }

  function renderSystem(doc) {
    var sys = document.getElementById('system');
    sys.replaceChildren();
    function row(k, v) { sys.appendChild(el('dt', { text: k })); sys.appendChild(el('dd', { text: v })); }
    row('Ready', doc.ready ? 'yes' : 'no (starting or stopping)');
    var d = doc.docker;
    row('Docker', d === 'disabled' ? 'discovery off' : d && d.connected ? 'connected' : 'unreachable' + (d && d.error ? ': ' + d.error : ''));
    if (doc.listeners) row('Ports', 'HTTP ' + doc.listeners.http + ', HTTPS ' + doc.listeners.https + ', admin ' + doc.listeners.admin);
    var p = doc.proxy;
    if (p) {
      var total = 0; for (var k in p.requestsByStatus) total += p.requestsByStatus[k];
      row('Connections', p.openConnections + ' open, ' + p.websockets + ' WebSockets, ' + p.inFlight + ' requests in flight');
      row('Requests served', String(total));
    }
  }

  function render(doc) {
    var now = Date.parse(doc.time) || Date.now();
    var s = doc.summary || { errors: 0, warnings: 0, routes: (doc.routes || []).length };
    var overall = document.getElementById('overall');
    var health = s.errors ? 'error' : s.warnings ? 'warning' : 'ok';
    overall.setAttribute('data-health', health);
    overall.textContent = (s.errors || s.warnings)
      ? plural(s.errors + s.warnings, 'problem needs', 'problems need') + ' attention; ' + plural(s.routes, 'name', 'names') + ' served'
      : 'All ' + plural(s.routes, 'name', 'names') + ' OK';
    renderAttention(doc, now);
    var names = document.getElementById('names');
    names.replaceChildren.apply(names, (doc.routes || []).map(function (r) { return renderName(r, now); }));
    document.getElementById('names-empty').hidden = (doc.routes || []).length > 0;
    renderSystem(doc);
    var up = document.getElementById('updated');
    up.setAttribute('datetime', doc.time);
    up.textContent = minute(doc.time).replace(' UTC', ':' + doc.time.slice(17, 19) + ' UTC');
    document.body.setAttribute('data-loaded', 'true');
  }

  function fail(text) {
    var overall = document.getElementById('overall');
    overall.setAttribute('data-health', 'error');
    overall.textContent = text;
  }

  function load() {
    clearTimeout(timer);
    fetch('/api/status', { cache: 'no-store', credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 401) throw new Error('The admin API needs its token (adminToken). Reload the page to sign in.');
        if (!res.ok) throw new Error('The admin API answered ' + res.status + '.');
        return res.json();
      })
      .then(render, function (err) { fail('Cannot load the status: ' + err.message + ' Retrying in 5 seconds.'); })
      .then(function () { timer = setTimeout(load, REFRESH_MS); });
  }

  document.getElementById('refresh').addEventListener('click', load);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) load(); });
  load();
})();
`;
