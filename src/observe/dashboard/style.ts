/** The dashboard's stylesheet: system fonts, no external assets, light and dark. */
export const DASHBOARD_CSS = `
:root {
  --bg: #f6f7f9; --card: #ffffff; --text: #1b1f24; --muted: #57606a; --border: #d0d7de;
  --ok: #1a7f37; --ok-bg: #dafbe1; --warn: #9a6700; --warn-bg: #fff8c5; --err: #b42318; --err-bg: #ffebe9;
  --pending: #0550ae; --pending-bg: #ddf4ff; --window: #e3b341; --valid: #4ac26b; --rest: #eaeef2;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 16px; line-height: 1.45; color: var(--text); background: var(--bg);
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --card: #161b22; --text: #e6edf3; --muted: #9198a1; --border: #30363d;
    --ok: #3fb950; --ok-bg: #12261e; --warn: #d29922; --warn-bg: #272115; --err: #ff7b72; --err-bg: #2d1618;
    --pending: #79c0ff; --pending-bg: #121d2f; --window: #bb8009; --valid: #2ea043; --rest: #21262d;
  }
}
* { box-sizing: border-box; }
body { margin: 0; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--card); padding: .5rem; z-index: 2; }
.top { display: flex; flex-wrap: wrap; justify-content: space-between; align-items: flex-end; gap: 1rem;
  padding: 1rem 1.5rem; background: var(--card); border-bottom: 1px solid var(--border); }
h1 { margin: 0; font-size: 1.5rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .75rem; }
h3 { font-size: 1.05rem; margin: 0; overflow-wrap: anywhere; }
.overall { margin: .25rem 0 0; font-weight: 600; }
.overall[data-health="error"] { color: var(--err); }
.overall[data-health="warning"] { color: var(--warn); }
.overall[data-health="ok"] { color: var(--ok); }
.meta { margin: 0; color: var(--muted); font-size: .9rem; }
button { font: inherit; font-size: .9rem; padding: .25rem .75rem; border-radius: 6px; border: 1px solid var(--border);
  background: var(--bg); color: var(--text); cursor: pointer; }
button:focus-visible, a:focus-visible { outline: 3px solid var(--pending); outline-offset: 2px; }
main { padding: 0 1.5rem 2rem; max-width: 78rem; margin: 0 auto; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
.attention { list-style: none; margin: 0; padding: 0; display: grid; gap: .75rem; }
.attention li { background: var(--card); border: 1px solid var(--border); border-left: 6px solid var(--err);
  border-radius: 8px; padding: .75rem 1rem; }
.attention li[data-severity="warning"] { border-left-color: var(--warn); }
.attention .what { font-weight: 600; overflow-wrap: anywhere; }
.attention .msg { margin: .35rem 0 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.attention .when { margin: .35rem 0 0; color: var(--muted); font-size: .9rem; }
.names { display: grid; gap: .75rem; }
.name { background: var(--card); border: 1px solid var(--border); border-radius: 8px; padding: .9rem 1rem; }
.name[data-health="error"] { border-color: var(--err); }
.name[data-health="warning"] { border-color: var(--warn); }
.name header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: baseline; justify-content: space-between; }
.badge { display: inline-block; font-size: .85rem; font-weight: 600; padding: .1rem .6rem; border-radius: 999px; }
.badge[data-health="ok"] { color: var(--ok); background: var(--ok-bg); }
.badge[data-health="warning"] { color: var(--warn); background: var(--warn-bg); }
.badge[data-health="error"] { color: var(--err); background: var(--err-bg); }
.badge[data-health="pending"], .badge[data-health="retired"] { color: var(--pending); background: var(--pending-bg); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .75rem 0 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.ups { list-style: none; margin: 0; padding: 0; }
.up::before { content: "● "; color: var(--ok); }
.up[data-healthy="false"]::before { content: "▲ "; color: var(--err); }
.err { color: var(--err); white-space: pre-wrap; }
.timeline { margin: .9rem 0 0; }
.bar { position: relative; height: 14px; border-radius: 7px; background: var(--rest); overflow: hidden; }
.seg { position: absolute; top: 0; bottom: 0; }
.seg.valid { background: var(--valid); }
.seg.window { background: var(--window); }
.now { position: absolute; top: -3px; bottom: -3px; width: 3px; background: var(--text); }
.ticks { display: flex; justify-content: space-between; gap: .5rem; color: var(--muted); font-size: .85rem; margin-top: .25rem; flex-wrap: wrap; }
.key { display: inline-block; width: .8em; height: .8em; border-radius: 2px; vertical-align: -1px; }
.key.valid { background: var(--valid); }
.key.window { background: var(--window); }
.key.now-key { width: 3px; background: var(--text); }
.system { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; background: var(--card);
  border: 1px solid var(--border); border-radius: 8px; padding: .75rem 1rem; margin: 0; }
.system dt { color: var(--muted); }
.system dd { margin: 0; }
.empty { color: var(--muted); }
@media (max-width: 40rem) { .facts, .system { grid-template-columns: 1fr; } .facts dt { margin-top: .4rem; } }
`;
