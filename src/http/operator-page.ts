/**
 * The operator page's HTML and style. Kept as TypeScript string modules (with operator-page-script.ts) rather than
 * files beside the code: tsc copies only .ts to dist/, so .html/.css files would need a copy step in the build and a
 * path resolved at run time from wherever the package is installed; a string module reaches dist/ with the rest, is
 * in memory once, and cannot go missing from an install. The page needs no build step of its own (plain HTML, CSS
 * and one script, no framework).
 *
 * Dark theme for a dark room: near-black background, light text of contrast ratio above 12:1, the running clock in
 * the largest type the screen allows, states by colour and word (never colour alone). Touch targets are at least 48
 * CSS px high (above the 44 px of Apple's and WCAG's guidance); the layout is one column under 900 px (a tablet held
 * upright) and two above.
 */

/** The page (GET /). Element ids are what operator-page-script.ts and the browser tests use. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>cuemux operator</title>
<link rel="stylesheet" href="/operator.css">
<script src="/operator.js" defer></script>
</head>
<body>
<header>
  <div id="clock-block">
    <div id="timecode" aria-live="off">--:--:--:--</div>
    <div id="clock-line"><span id="clock-state" class="state">connecting</span> <span id="clock-seconds">0.000 s</span>
      <span id="clock-rate"></span> <span id="link" class="link-down">offline</span></div>
  </div>
  <nav id="transport">
    <button id="go" class="go" title="GO the standby cue">GO</button>
    <button id="stop" title="Stop every cue">Stop</button>
    <button id="pause" title="Pause every playing cue">Pause</button>
    <button id="resume" title="Resume every paused cue">Resume</button>
    <form id="locate-form"><input id="locate-position" placeholder="00:00:00:00 or s" aria-label="Locate to">
      <button id="locate" type="submit">Locate</button></form>
  </nav>
</header>
<main>
  <section id="cues-panel">
    <h2>Cues <span id="standby-label"></span></h2>
    <table id="cues"><thead><tr><th>Cue</th><th>Name</th><th>State</th><th>Media</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section id="side">
    <section id="preview-panel">
      <h2>Preview <span id="preview-label"></span></h2>
      <video id="preview" controls muted playsinline preload="auto"></video>
    </section>
    <section id="status-panel"><h2>Server</h2><div id="status"></div></section>
    <section id="log-panel"><h2>Errors</h2><ol id="log"></ol></section>
  </section>
</main>
</body>
</html>
`;

/** The page's style (GET /operator.css). */
export const PAGE_CSS = `
:root { --bg: #0b0d10; --panel: #151920; --line: #2a313c; --text: #eef2f6; --dim: #a9b4c2; --go: #1f9d55; --stop: #c62828;
  --pause: #d4a017; --armed: #3b82f6; --standby: #f5c518; --err: #ff6b6b; }
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text); font: 18px/1.35 system-ui, sans-serif; }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; justify-content: space-between; padding: 12px 16px;
  border-bottom: 2px solid var(--line); }
#timecode { font: 700 clamp(48px, 9vw, 120px)/1 ui-monospace, "DejaVu Sans Mono", monospace; letter-spacing: 0.02em;
  font-variant-numeric: tabular-nums; }
#clock-line { color: var(--dim); font-size: 20px; margin-top: 4px; }
.state { font-weight: 700; text-transform: uppercase; }
.state-playing, .state-chasing { color: var(--go); } .state-paused { color: var(--pause); } .state-armed { color: var(--armed); }
.state-stopped, .state-unloaded { color: var(--dim); }
.link-up { color: var(--go); } .link-down { color: var(--err); font-weight: 700; }
nav#transport { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; }
button, input { min-height: 48px; min-width: 48px; font-size: 20px; border-radius: 8px; border: 2px solid var(--line);
  background: var(--panel); color: var(--text); padding: 0 16px; touch-action: manipulation; }
button:active { transform: translateY(1px); }
button.go { background: var(--go); border-color: var(--go); color: #fff; font-weight: 800; min-width: 120px; min-height: 64px; font-size: 28px; }
#stop { border-color: var(--stop); } #pause, #resume { border-color: var(--pause); }
input { width: 11em; font-family: ui-monospace, monospace; }
form { display: flex; gap: 8px; margin: 0; }
main { display: grid; grid-template-columns: 3fr 2fr; gap: 16px; padding: 16px; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
section > h2 { font-size: 16px; text-transform: uppercase; letter-spacing: 0.08em; color: var(--dim); margin: 0 0 8px; }
#side { display: flex; flex-direction: column; gap: 16px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; color: var(--dim); font-weight: 600; font-size: 15px; border-bottom: 2px solid var(--line); padding: 6px; }
td { border-bottom: 1px solid var(--line); padding: 6px; vertical-align: middle; }
td.media { color: var(--dim); font-size: 15px; word-break: break-all; }
tr.standby { outline: 3px solid var(--standby); outline-offset: -3px; }
tr.standby td:first-child::before { content: "▶ "; color: var(--standby); }
tr.problem td.name { color: var(--err); }
td.actions { white-space: nowrap; }
td button { min-height: 44px; font-size: 16px; padding: 0 10px; margin: 2px; }
#standby-label { color: var(--standby); text-transform: none; }
video { width: 100%; max-height: 40vh; background: #000; border-radius: 8px; }
#status { font-size: 15px; color: var(--dim); }
#status b { color: var(--text); }
#log { margin: 0; padding-left: 20px; color: var(--err); font-size: 15px; max-height: 30vh; overflow: auto; }
#log:empty::before { content: "none"; color: var(--dim); }
`;
