/**
 * The operator page's script (GET /operator.js), plain ES2017 for any current browser, no framework: it listens to
 * /events, runs the clock between states from the anchor the server sends (so the timecode moves every frame
 * without a message per frame), draws the cue list, status and error log, and posts actions to /action/<name>.
 * See operator-page.ts for why the page lives in string modules.
 *
 * The timecode label is computed here from the frame count, the same arithmetic as src/show/timecode.ts's
 * framesToTimecode (drop-frame labels included); the server's own label comes with every state and is shown as is
 * while the clock stands still.
 */

/** The script. Element ids are those of operator-page.ts's PAGE_HTML. */
export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var state = null;
  var offsetMs = 0; // server wall clock minus this browser's, measured at each state (the page may run elsewhere)
  var seenProblems = {};
  var $ = function (id) { return document.getElementById(id); };

  function two(n) { return n < 10 ? '0' + n : String(n); }

  /** The label of frame number frames at rate r ({name, num, den, nominal, dropFrame}), as the server writes it. */
  function label(frames, r) {
    var drop = r.dropFrame ? Math.round(r.nominal / 15) : 0;
    var perDay = r.dropFrame ? (r.nominal * 600 - 9 * drop) * 144 : r.nominal * 86400;
    var f = Math.abs(frames) % perDay;
    if (drop > 0) {
      var per10 = r.nominal * 600 - 9 * drop;
      var perMin = r.nominal * 60 - drop;
      var tens = Math.floor(f / per10);
      var rem = f - tens * per10;
      f += 9 * drop * tens;
      if (rem >= drop) f += drop * Math.floor((rem - drop) / perMin);
    }
    var ff = f % r.nominal;
    var secs = (f - ff) / r.nominal;
    var tc = two(Math.floor(secs / 3600)) + ':' + two(Math.floor(secs / 60) % 60) + ':' + two(secs % 60) + (drop > 0 ? ';' : ':') + two(ff);
    return frames < 0 ? '-' + tc : tc;
  }

  /** The clock position now, in seconds, from the last state's anchor. */
  function position() {
    var c = state.clock;
    if (c.state === 'stopped' || c.rate === 0) return c.positionSeconds;
    return c.positionSeconds + c.rate * (Date.now() + offsetMs - c.anchorUnixMs) / 1000;
  }

  function tick() {
    if (state !== null) {
      var c = state.clock;
      var p = position();
      var running = !(c.state === 'stopped' || c.rate === 0);
      // Floor of the frame at p, within a nanosecond's rounding (as secondsToFrames does).
      var frames = Math.floor((Math.round(p * 1e9) / 1e9) * c.timecodeRate.num / c.timecodeRate.den + 1e-9);
      $('timecode').textContent = running ? label(frames, c.timecodeRate) : c.timecode;
      $('clock-seconds').textContent = p.toFixed(3) + ' s';
    }
    requestAnimationFrame(tick);
  }

  function text(tag, value, cls) {
    var e = document.createElement(tag);
    e.textContent = value;
    if (cls) e.className = cls;
    return e;
  }

  function button(name, title, onClick) {
    var b = text('button', name);
    b.title = title;
    b.addEventListener('click', onClick);
    return b;
  }

  function logError(message) {
    var li = text('li', new Date().toLocaleTimeString() + '  ' + message);
    var log = $('log');
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 100) log.removeChild(log.lastChild);
  }

  function act(name, body) {
    return fetch('/action/' + name, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body || {}) })
      .then(function (r) { return r.json(); })
      .then(function (reply) {
        if (reply.status !== 'ok') logError(name + ': ' + (reply.error || reply.message || JSON.stringify(reply)));
        return reply;
      }, function (e) { logError(name + ': ' + e); });
  }

  function mediaUrl(media) {
    return media.split('/').map(encodeURIComponent).join('/');
  }

  function preview(cue) {
    var v = $('preview');
    var q = '?start=' + (cue.inSeconds || 0) + (cue.outSeconds != null ? '&end=' + cue.outSeconds : '');
    v.src = '/preview/' + mediaUrl(cue.previewPath) + q;
    $('preview-label').textContent = cue.id + ' ' + cue.previewPath;
    var played = v.play();
    if (played && played.catch) played.catch(function (e) { logError('preview ' + cue.id + ': ' + e); });
  }

  var rowsKey = null;
  var cueById = {};

  /** The row of cue c: built once per cue list shape, so a button is never replaced under a finger (or a click). */
  function buildRow(c) {
    var tr = document.createElement('tr');
    tr.dataset.cue = c.id;
    tr.appendChild(text('td', c.id));
    tr.appendChild(text('td', '', 'name'));
    tr.appendChild(text('td', '', 'state'));
    tr.appendChild(text('td', '', 'media'));
    var cell = document.createElement('td');
    cell.className = 'actions';
    var id = c.id;
    cell.appendChild(button('GO', 'GO cue ' + id, function () { act('go', { id: id }); }));
    cell.appendChild(button('Stby', 'Stand by cue ' + id, function () { act('standby', { id: id }); }));
    if (c.previewPath) cell.appendChild(button('Preview', 'Preview cue ' + id + ' here', function () { preview(cueById[id]); }));
    else cell.appendChild(button('Load', 'Load cue ' + id, function () { act('load', { id: id }); }));
    tr.appendChild(cell);
    return tr;
  }

  function renderCues() {
    var body = $('cues').tBodies[0];
    var key = JSON.stringify(state.cues.map(function (c) { return [c.id, !!c.previewPath]; }));
    if (key !== rowsKey) {
      rowsKey = key;
      body.textContent = '';
      state.cues.forEach(function (c) { body.appendChild(buildRow(c)); });
    }
    cueById = {};
    state.cues.forEach(function (c, i) {
      cueById[c.id] = c;
      var tr = body.rows[i];
      tr.dataset.state = c.state;
      tr.className = (c.id === state.standby ? 'standby' : '') + (c.problem ? ' problem' : '');
      tr.cells[1].textContent = (c.name || '') + (c.problem ? ' ⚠ ' + c.problem : '');
      tr.cells[2].textContent = c.state;
      tr.cells[2].className = 'state state-' + c.state;
      tr.cells[3].textContent = c.previewPath || c.media || '';
    });
    $('standby-label').textContent = state.standby ? 'standby: ' + state.standby : '';
  }

  function renderStatus() {
    var s = state.server;
    var box = $('status');
    box.textContent = '';
    var line = function (k, v) { var d = document.createElement('div'); d.appendChild(text('b', k + ' ')); d.appendChild(document.createTextNode(v)); box.appendChild(d); };
    line('cuemux', s.version + ' · ' + s.role + ' · up ' + Math.round(s.uptimeSeconds) + ' s');
    line('open media', String(s.media.length));
    s.media.forEach(function (m) { line('  ' + m.path, m.clients + ' clients · ' + (m.bytesRead / 1048576).toFixed(1) + ' MiB read · ' + m.growth); });
    var queued = s.clients.reduce(function (n, c) { return n + c.bytesQueued; }, 0);
    line('players', s.clients.length + ' streams · ' + (queued / 1024).toFixed(0) + ' KiB queued');
    line('pages', s.pages + (s.pagesDropped ? ' (' + s.pagesDropped + ' dropped)' : ''));
  }

  function onState(ev) {
    state = JSON.parse(ev.data);
    offsetMs = state.serverUnixMs - Date.now();
    var c = state.clock;
    var st = $('clock-state');
    st.textContent = c.state;
    st.className = 'state state-' + c.state;
    $('clock-rate').textContent = c.rate === 1 ? '' : '×' + c.rate;
    document.body.dataset.generation = String(c.generation);
    renderCues();
    renderStatus();
    state.problems.forEach(function (p) {
      var key = p.cueId + '@' + p.unixMs;
      if (seenProblems[key]) return;
      seenProblems[key] = true;
      logError('cue ' + p.cueId + ' (' + p.during + '): ' + p.message);
    });
  }

  function connect() {
    var es = new EventSource('/events');
    es.addEventListener('state', onState);
    es.onopen = function () { $('link').textContent = 'live'; $('link').className = 'link-up'; };
    es.onerror = function () { $('link').textContent = 'offline'; $('link').className = 'link-down'; };
  }

  $('go').addEventListener('click', function () { act('go'); });
  $('stop').addEventListener('click', function () { act('stop'); });
  $('pause').addEventListener('click', function () { act('pause'); });
  $('resume').addEventListener('click', function () { act('resume'); });
  $('locate-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var v = $('locate-position').value.trim();
    act('locate', { position: /^[-+]?[0-9.]+$/.test(v) ? Number(v) : v });
  });
  $('preview').addEventListener('error', function () {
    var err = $('preview').error;
    if (err) logError('preview: ' + (err.message || 'media error ' + err.code));
  });
  connect();
  requestAnimationFrame(tick);
})();
`;
