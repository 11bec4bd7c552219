/**
 * The dashboard's HTML shell. It holds no data: the script fills it from
 * /api/status. Embedded as a string so tsc's output (dist/) is complete and
 * no copy step is needed.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>padlock status</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<a class="skip" href="#names-h">Skip to the names</a>
<header class="top">
  <div>
    <h1>padlock</h1>
    <p id="overall" class="overall" role="status" aria-live="polite">Loading status…</p>
  </div>
  <p class="meta">
    Updated <time id="updated">never</time>; refreshes every 5 seconds.
    <button id="refresh" type="button">Refresh now</button>
  </p>
</header>
<main>
  <section id="attention" aria-labelledby="attention-h" hidden>
    <h2 id="attention-h">Needs attention</h2>
    <ul id="attention-list" class="attention"></ul>
  </section>
  <section aria-labelledby="names-h">
    <h2 id="names-h" tabindex="-1">Names</h2>
    <p id="names-empty" class="empty" hidden>No routes yet. Label a container with <code>padlock.host</code> or add <code>sites</code> to the config file.</p>
    <div id="names" class="names"></div>
  </section>
  <section aria-labelledby="system-h">
    <h2 id="system-h">System</h2>
    <dl id="system" class="system"></dl>
  </section>
</main>
<noscript><p>This page needs JavaScript. The same data is at <a href="/api/status">/api/status</a>.</p></noscript>
</body>
</html>
`;

/** A padlock, as the tab icon. */
export const DASHBOARD_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M10 14V10a6 6 0 0 1 12 0v4" fill="none" stroke="#1a7f37" stroke-width="3"/><rect x="6" y="14" width="20" height="15" rx="3" fill="#1a7f37"/></svg>
`;
