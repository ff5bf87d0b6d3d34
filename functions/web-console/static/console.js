// The roomrec web console: plain DOM over the API of this same origin. The credential (HTTP
// Basic key id + secret, or an X-Auth-Token) lives in sessionStorage only, so it goes when the
// tab closes. Every value from the API reaches the page as text (textContent), never as HTML.
'use strict';

(() => {
  const AUTH_KEY = 'roomrec.console.auth';
  const NOT_YET = '0001-01-01T00:00:00Z';
  const LIVE_STATES = ['INIT', 'RUNNING', 'STOPPING'];
  const main = document.getElementById('main');
  const where = document.getElementById('where');
  const signOut = document.getElementById('sign-out');
  // Timers and players of the view on screen, cleared when another view opens.
  let viewTimers = [];
  let viewPlayer = null;

  // ---- credentials ----

  function credential() {
    try {
      return JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
    } catch (_) {
      return null;
    }
  }

  function authHeaders() {
    const auth = credential();
    if (!auth) return {};
    return auth.kind === 'token' ? { 'X-Auth-Token': auth.value } : { Authorization: 'Basic ' + auth.value };
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.error_msg || body.message)) || 'HTTP ' + status);
      this.status = status;
      this.code = body && body.error_code;
    }
  }

  // Calls the API; answers the parsed JSON body (null for none), throws ApiError otherwise.
  async function api(method, path, body) {
    const headers = Object.assign({ Accept: 'application/json' }, authHeaders());
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch (_) {
      parsed = null;
    }
    if (response.status === 401) {
      sessionStorage.removeItem(AUTH_KEY);
    }
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }

  // ---- DOM helpers ----

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function link(hash, text) {
    return h('a', { href: hash }, text);
  }

  function table(headers, rows, attrs) {
    return h('table', attrs, h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))), h('tbody', {}, rows));
  }

  function facts(pairs) {
    return h('dl', {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  }

  function time(value) {
    return !value || value === NOT_YET ? '—' : value.replace('T', ' ').replace('Z', ' UTC');
  }

  function bytes(n) {
    if (n === undefined || n === null) return '—';
    const units = ['B', 'KB', 'MB', 'GB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }

  function seconds(ms) {
    const s = ms / 1000;
    const m = Math.floor(s / 60);
    return m + ':' + (s - m * 60).toFixed(3).padStart(6, '0');
  }

  function errorText(err) {
    return h('p', { class: 'error', role: 'alert' }, err instanceof ApiError ? err.status + ': ' + err.message : String(err));
  }

  function crumbs(parts) {
    where.replaceChildren(...parts.flatMap(([hash, text], i) => [i ? ' / ' : '', link(hash, text)]));
  }

  function show(...nodes) {
    main.replaceChildren(...nodes);
  }

  function every(ms, fn) {
    viewTimers.push(setInterval(fn, ms));
  }

  // ---- sign-in ----

  function signInView(message) {
    crumbs([]);
    signOut.hidden = true;
    const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' }, message || '');
    const method = h('select', { name: 'method', id: 'signin-method' },
      h('option', { value: 'basic' }, 'Key id and secret (HTTP Basic)'),
      h('option', { value: 'token' }, 'Token (X-Auth-Token)'));
    const keyId = h('input', { name: 'key_id', id: 'signin-key-id', autocomplete: 'username' });
    const secret = h('input', { name: 'secret', id: 'signin-secret', type: 'password', autocomplete: 'current-password' });
    const token = h('input', { name: 'token', id: 'signin-token', type: 'password', autocomplete: 'off' });
    const tokenHelp = h('p', { class: 'note' },
      'Paste a token, or leave it empty to have one issued for the key id and secret (POST /v3/auth/tokens); only the token is kept.');
    const tokenRow = h('label', { hidden: true }, 'Token', token, tokenHelp);
    method.addEventListener('change', () => {
      tokenRow.hidden = method.value !== 'token';
    });
    const form = h('form', { class: 'signin', id: 'signin' },
      h('label', {}, 'Sign in with', method),
      h('label', {}, 'Key id', keyId),
      h('label', {}, 'Secret', secret),
      tokenRow,
      h('button', { type: 'submit', id: 'signin-submit' }, 'Sign in'),
      error);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      try {
        await signIn(method.value, keyId.value.trim(), secret.value, token.value.trim());
        if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/apps';
        else route();
      } catch (err) {
        sessionStorage.removeItem(AUTH_KEY);
        error.textContent = err instanceof ApiError ? err.status + ': ' + err.message : String(err);
      }
    });
    show(h('section', {}, h('h1', {}, 'Sign in'),
      h('p', { class: 'note' }, 'The credential stays in this tab (session storage) and is sent only to this API.'), form));
  }

  async function signIn(method, keyId, secret, token) {
    if (method === 'token') {
      if (!token) token = await issueToken(keyId, secret);
      sessionStorage.setItem(AUTH_KEY, JSON.stringify({ kind: 'token', value: token }));
    } else {
      if (!keyId || !secret) throw new Error('key id and secret are both needed');
      const pair = new TextEncoder().encode(keyId + ':' + secret);
      sessionStorage.setItem(AUTH_KEY, JSON.stringify({ kind: 'basic', value: btoa(String.fromCharCode(...pair)) }));
    }
    await api('GET', '/v2/apps');
  }

  async function issueToken(keyId, secret) {
    const body = { auth: { identity: { methods: ['password'], password: { user: { name: keyId, password: secret } } } } };
    const response = await fetch('/v3/auth/tokens', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
    });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const token = response.headers.get('X-Subject-Token');
    if (!token) throw new Error('the API issued no token');
    return token;
  }

  // ---- apps ----

  async function appsView() {
    crumbs([['#/apps', 'Apps']]);
    const listed = await api('GET', '/v2/apps');
    const rows = (listed.apps || []).map((app) => h('tr', {},
      h('td', {}, link('#/apps/' + encodeURIComponent(app.app_id), app.app_name)),
      h('td', { class: 'mono' }, app.app_id),
      h('td', {}, time(app.create_time))));
    show(h('section', {}, h('h1', {}, 'Apps'),
      rows.length ? table(['Name', 'App id', 'Created'], rows, { id: 'apps' }) : h('p', { class: 'note' }, 'No apps yet.')));
  }

  async function optional(promise) {
    try {
      return await promise;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  async function appView(appId) {
    const base = '/v2/apps/' + encodeURIComponent(appId);
    const [app, rules, callback, individual, mix] = await Promise.all([
      api('GET', base),
      api('GET', base + '/record-rules'),
      optional(api('GET', base + '/record-callback')),
      api('GET', base + '/individual-stream-jobs?limit=50'),
      api('GET', base + '/mix-stream-jobs?limit=50'),
    ]);
    crumbs([['#/apps', 'Apps'], ['#/apps/' + encodeURIComponent(appId), app.app_name]]);
    const jobs = [...(individual.jobs || []).map((j) => ['individual', j]), ...(mix.jobs || []).map((j) => ['mix', j])]
      .sort((a, b) => (a[1].create_time < b[1].create_time ? 1 : -1));
    const rooms = [...new Set(jobs.map(([, j]) => j.room_id))];
    show(
      h('section', {}, h('h1', {}, app.app_name),
        facts([['App id', app.app_id], ['Stream URL template', app.stream_url_template], ['Created', time(app.create_time)]])),
      rulesSection(rules),
      callbackSection(callback),
      roomsSection(appId, rooms),
      jobsSection(appId, jobs));
  }

  function rulesSection(rules) {
    const list = (rules && rules.record_rules) || [];
    return h('section', { id: 'rules' }, h('h2', {}, 'Record rule'),
      list.length ? list.map((rule) => facts([
        ['Rule id', rule.rule_id],
        ['Formats', (rule.record_formats || []).join(', ')],
        ['Storage', rule.obs_addr && ['s3://' + rule.obs_addr.bucket + '/' + (rule.obs_addr.object || ''),
          rule.obs_addr.location, rule.obs_addr.role_arn ? 'as ' + rule.obs_addr.role_arn : ''].filter(Boolean).join('  ')],
        ['HLS', rule.hls_config && JSON.stringify(rule.hls_config)],
        ['MP4', rule.mp4_config && JSON.stringify(rule.mp4_config)],
        ['Automatic recording', rule.auto_record === undefined ? undefined : String(rule.auto_record)],
        ['Updated', time(rule.update_time)],
      ])) : h('p', { class: 'note' }, 'No rule: jobs of this app cannot record yet.'));
  }

  function callbackSection(callback) {
    const cb = callback && callback.record_callback;
    return h('section', { id: 'callback' }, h('h2', {}, 'Callback'),
      cb ? facts([
        ['URL', cb.url],
        ['Events', (cb.notify_event_subscription || []).join(', ')],
        ['Signing key', cb.auth_key ? cb.auth_key.length + ' characters (hidden)' : '—'],
        ['Updated', time(cb.update_time)],
      ]) : h('p', { class: 'note' }, 'No callback: events are recorded and listed per job, but sent nowhere.'));
  }

  function roomsSection(appId, rooms) {
    const input = h('input', { name: 'room_id', placeholder: 'room id', id: 'room-id' });
    const form = h('form', { class: 'actions' }, input, h('button', { type: 'submit' }, 'Open room'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (input.value.trim()) location.hash = roomHash(appId, input.value.trim());
    });
    return h('section', { id: 'rooms' }, h('h2', {}, 'Rooms'),
      rooms.length ? h('p', {}, 'Rooms of recent jobs: ', rooms.flatMap((r, i) => [i ? ', ' : '', link(roomHash(appId, r), r)])) : null,
      form);
  }

  function roomHash(appId, roomId) {
    return '#/apps/' + encodeURIComponent(appId) + '/rooms/' + encodeURIComponent(roomId);
  }

  function jobHash(appId, kind, jobId) {
    return '#/apps/' + encodeURIComponent(appId) + '/jobs/' + kind + '/' + encodeURIComponent(jobId);
  }

  function jobsSection(appId, jobs) {
    const rows = jobs.map(([kind, job]) => h('tr', { dataset: { jobId: job.job_id } },
      h('td', {}, link(jobHash(appId, kind, job.job_id), job.job_id)),
      h('td', {}, kind),
      h('td', { class: 'state state-' + job.state }, job.state + (job.stop_reason ? ' (' + job.stop_reason + ')' : '')),
      h('td', {}, job.room_id),
      h('td', {}, job.user_id || ''),
      h('td', {}, time(job.create_time))));
    return h('section', { id: 'jobs' }, h('h2', {}, 'Jobs'),
      rows.length ? table(['Job', 'Kind', 'State', 'Room', 'User', 'Created'], rows) : h('p', { class: 'note' }, 'No jobs yet.'));
  }

  // ---- rooms ----

  async function roomView(appId, roomId) {
    const base = '/v2/apps/' + encodeURIComponent(appId);
    const app = await api('GET', base);
    crumbs([['#/apps', 'Apps'], ['#/apps/' + encodeURIComponent(appId), app.app_name], [roomHash(appId, roomId), 'room ' + roomId]]);
    const body = h('div', {});
    const stamp = h('p', { class: 'note' });
    const refresh = async () => {
      try {
        const roster = await api('GET', base + '/rooms/' + encodeURIComponent(roomId) + '/streams');
        const rows = (roster.streams || []).map((s) => h('tr', {},
          h('td', {}, s.user_id), h('td', {}, s.video_type),
          h('td', {}, [s.has_video ? 'video' : '', s.has_audio ? 'audio' : ''].filter(Boolean).join(' + ')),
          h('td', {}, time(s.join_time)), h('td', { class: 'mono' }, s.url)));
        body.replaceChildren(rows.length ? table(['User', 'Stream', 'Media', 'Joined', 'URL'], rows, { id: 'roster' })
          : h('p', { class: 'note' }, 'Nobody is in this room.'));
        stamp.textContent = 'Live: refreshed ' + new Date().toLocaleTimeString();
      } catch (err) {
        body.replaceChildren(errorText(err));
      }
    };
    show(h('section', {}, h('h1', {}, 'Room ' + roomId), stamp, body));
    await refresh();
    every(3000, refresh);
  }

  // ---- jobs ----

  async function jobView(appId, kind, jobId) {
    const collection = kind === 'mix' ? 'mix-stream-jobs' : 'individual-stream-jobs';
    const base = '/v2/apps/' + encodeURIComponent(appId) + '/' + collection + '/' + encodeURIComponent(jobId);
    const app = await api('GET', '/v2/apps/' + encodeURIComponent(appId));
    crumbs([['#/apps', 'Apps'], ['#/apps/' + encodeURIComponent(appId), app.app_name], [jobHash(appId, kind, jobId), 'job ' + jobId]]);
    const summary = h('div', { id: 'job-summary' });
    const files = h('div', { id: 'job-files' });
    const events = h('div', { id: 'job-events' });
    const timeline = h('section', { id: 'timeline', hidden: true });
    const player = playerSection();
    const state = { job: null, events: [] };

    const renderJob = (job) => {
      state.job = job;
      summary.replaceChildren(facts([
        ['Job id', job.job_id],
        ['Kind', kind],
        ['State', h('span', { class: 'state state-' + job.state, id: 'job-state' }, job.state)],
        ['Stop reason', job.stop_reason],
        ['Room', link(roomHash(appId, job.room_id), job.room_id)],
        ['User', job.user_id],
        ['Stream name', job.stream_name],
        ['Paused', job.paused === undefined ? undefined : String(job.paused)],
        ['Started', time(job.start_time)],
        ['Stopped', time(job.stop_time)],
      ]));
      files.replaceChildren(filesTable(job));
    };

    const fileActions = (file) => {
      const actions = [];
      const url = downloadUrl(file);
      if (isPlaylist(file)) {
        actions.push(h('button', { type: 'button', class: 'play-hls', onclick: () => player.playHls(playbackUrl(base, file.obs_object), file) },
          LIVE_STATES.includes(state.job.state) ? 'Watch live' : 'Play'));
      } else if (url) {
        actions.push(h('button', { type: 'button', class: 'play-file', onclick: () => player.playFile(url, file) }, 'Play'));
      }
      if (url) actions.push(h('a', { href: url, rel: 'noreferrer', download: '' }, 'Download'));
      const sidecar = timelineOf(file);
      if (sidecar) {
        actions.push(h('button', { type: 'button', class: 'show-timeline', onclick: () => showTimeline(timeline, sidecar, file, player) }, 'Timeline'));
      }
      return h('div', { class: 'actions' }, actions);
    };

    const filesTable = (job) => {
      const list = allFiles(job);
      if (!list.length) {
        return h('p', { class: 'note' }, LIVE_STATES.includes(job.state)
          ? 'No file yet: files are listed here as they complete.' : 'This job recorded no file.');
      }
      return table(['Format', 'Object', 'Size', 'Duration', 'Started', ''], list.map((f) => h('tr', { dataset: { object: f.obs_object } },
        h('td', {}, f.record_format || ''),
        h('td', { class: 'mono' }, f.obs_object),
        h('td', {}, bytes(f.file_size)),
        h('td', {}, f.record_duration === undefined ? '—' : Number(f.record_duration).toFixed(1) + ' s'),
        h('td', {}, time(f.start_time)),
        h('td', {}, fileActions(f)))), { id: 'files' });
    };

    // The job's files, completed ones first, then those still recording (when the API lists
    // them), each with what its RECORD_FILE_COMPLETE event adds (download_url, timeline).
    const allFiles = (job) => {
      const byObject = new Map();
      for (const f of [...(job.record_files || []), ...(job.recording_files || [])]) {
        if (!byObject.has(f.obs_object)) byObject.set(f.obs_object, Object.assign({}, f));
      }
      for (const e of state.events) {
        if (e.event_type !== 'RECORD_FILE_COMPLETE' || !e.obs_object) continue;
        const known = byObject.get(e.obs_object) || {};
        byObject.set(e.obs_object, Object.assign({ event: e }, e, known, { event: e }));
      }
      return [...byObject.values()];
    };

    const renderEvents = () => {
      const rows = state.events.map((e) => h('tr', { dataset: { eventId: e.event_id, sequence: e.sequence } },
        h('td', {}, e.sequence),
        h('td', {}, e.event_type),
        h('td', {}, e.record_format || ''),
        h('td', { class: 'mono' }, e.obs_object || e.detail_message || ''),
        h('td', {}, time(e.create_time)),
        h('td', { class: 'status status-' + e.delivery_status }, e.delivery_status),
        h('td', { class: 'attempts' }, h('span', { class: 'attempt-count' }, String((e.attempts || []).length)),
          h('ul', {}, (e.attempts || []).map((a) => h('li', {},
            time(a.at) + ': ' + (a.status ? 'HTTP ' + a.status : a.error || 'no answer') + ' in ' + a.latency_ms + ' ms')))),
        h('td', {}, e.next_attempt_at ? time(e.next_attempt_at) : ''),
        h('td', {}, h('button', { type: 'button', class: 'redeliver', onclick: (ev) => redeliver(e, ev.target) }, 'Redeliver'))));
      events.replaceChildren(
        h('p', { class: 'note', id: 'events-note' }),
        rows.length ? table(['#', 'Event', 'Format', 'File', 'Created', 'Delivery', 'Attempts', 'Next attempt', ''], rows, { id: 'events' })
          : h('p', { class: 'note' }, 'No events yet.'));
    };

    const loadEvents = async () => {
      const listed = await api('GET', base + '/events');
      state.events = listed.events || [];
      renderEvents();
    };

    const loadJob = async () => {
      renderJob(await api('GET', base));
    };

    const reload = async () => {
      try {
        await Promise.all([loadEvents(), loadJob()]);
      } catch (err) {
        summary.replaceChildren(errorText(err));
      }
    };

    const redeliver = async (event, button) => {
      const before = (event.attempts || []).length;
      button.disabled = true;
      const note = () => document.getElementById('events-note');
      try {
        await api('POST', base + '/events/' + encodeURIComponent(event.event_id) + '/redeliver', {});
        note().textContent = 'Redelivery of event ' + event.sequence + ' queued; waiting for its attempt…';
        for (let i = 0; i < 60; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          await loadEvents();
          const now = state.events.find((e) => e.event_id === event.event_id);
          if (now && (now.attempts || []).length > before) {
            note().textContent = 'Event ' + event.sequence + ' redelivered: attempt ' + now.attempts.length + ' logged.';
            return;
          }
        }
        note().textContent = 'Event ' + event.sequence + ': no new attempt yet; refresh later.';
      } catch (err) {
        const n = note();
        if (n) n.replaceChildren(errorText(err));
        button.disabled = false;
      }
    };

    const refreshButton = h('button', { type: 'button', id: 'refresh', onclick: reload }, 'Refresh');
    show(
      h('section', {}, h('h1', {}, (kind === 'mix' ? 'Mix job ' : 'Individual job ') + jobId), summary, h('div', { class: 'actions' }, refreshButton)),
      player.section,
      h('section', {}, h('h2', {}, 'Files'), files),
      timeline,
      h('section', {}, h('h2', {}, 'Events'), events));
    await loadEvents().catch((err) => events.replaceChildren(errorText(err)));
    await loadJob();
    // A job still recording is followed on its own; a finished one changes only on a redelivery.
    every(5000, () => {
      if (state.job && LIVE_STATES.includes(state.job.state)) reload();
    });
  }

  function isPlaylist(file) {
    return /\.m3u8$/.test(file.obs_object || '');
  }

  // The file's presigned URL (http(s) only: it becomes a link and a media source).
  function downloadUrl(file) {
    const url = file.download_url || (file.event && file.event.download_url) || null;
    return url && /^https?:\/\//.test(url) ? url : null;
  }

  // The playback route of the API (same origin): the playlist with presigned segment URIs.
  function playbackUrl(base, object) {
    return base + '/playback.m3u8?object=' + encodeURIComponent(object);
  }

  // Where a file's timeline sidecar is: its object and, when the API gives one, a URL for it.
  function timelineOf(file) {
    const object = file.timeline_object || (file.event && file.event.timeline_object);
    if (!object) return null;
    const url = file.timeline_download_url || (file.event && file.event.timeline_download_url) ||
      (file.timeline && file.timeline.download_url) || null;
    return { object, url: url && /^https?:\/\//.test(url) ? url : null };
  }

  // ---- player ----

  function playerSection() {
    const video = h('video', { id: 'player', controls: true, playsinline: true, preload: 'auto' });
    const title = h('p', { class: 'note', id: 'player-title' });
    const error = h('p', { class: 'error', id: 'player-error', role: 'alert' });
    const section = h('section', { id: 'player-section', hidden: true }, h('h2', {}, 'Player'), title, video, error);
    let hls = null;
    let current = null;

    const reset = () => {
      if (hls) hls.destroy();
      hls = null;
      video.removeAttribute('src');
      video.load();
      error.textContent = '';
    };
    const start = async (file, label) => {
      current = file;
      section.hidden = false;
      title.textContent = label + ': ' + file.obs_object;
      try {
        await video.play();
      } catch (_) {
        // Autoplay with sound may be refused; muted it is allowed.
        video.muted = true;
        await video.play().catch((err) => {
          error.textContent = 'cannot play: ' + err.message;
        });
      }
    };
    const player = {
      section,
      video,
      current: () => current,
      playFile(url, file) {
        reset();
        video.src = url;
        return start(file, 'File');
      },
      playHls(url, file) {
        reset();
        const Hls = window.Hls;
        if (!Hls || !Hls.isSupported()) {
          section.hidden = false;
          error.textContent = window.roomrecNoPlayer || 'this browser cannot play HLS';
          return Promise.resolve();
        }
        hls = new Hls({
          // No worker: the policy allows no blob: scripts.
          enableWorker: false,
          // The playlist is the API's (this origin, signed in); its segments are presigned
          // URLs of the bucket, which must get no credential of ours.
          xhrSetup(xhr, target) {
            if (new URL(target, location.href).origin === location.origin) {
              for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
            }
          },
        });
        hls.on(Hls.Events.ERROR, (_, data) => {
          if (data.fatal) error.textContent = 'HLS error: ' + data.details;
        });
        hls.loadSource(url);
        hls.attachMedia(video);
        return start(file, 'HLS');
      },
    };
    viewPlayer = player;
    return player;
  }

  // ---- timeline ----

  async function showTimeline(section, sidecar, file, player) {
    section.hidden = false;
    const heading = h('h2', {}, 'Timeline of ' + file.obs_object);
    if (!sidecar.url) {
      section.replaceChildren(heading, h('p', { class: 'note' }, sidecar.object + ': the API gives no download URL for it.'));
      return;
    }
    section.replaceChildren(heading, h('p', { class: 'note' }, 'Loading…'));
    try {
      const response = await fetch(sidecar.url, { credentials: 'omit', cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const doc = await response.json();
      const rows = (doc.entries || []).map((entry) => h('tr', { class: 'timeline-entry' },
        h('td', {}, h('button', {
          type: 'button',
          title: 'seek the player here',
          onclick: () => {
            if (player.current() && player.current().obs_object === file.obs_object) player.video.currentTime = entry.at_ms / 1000;
          },
        }, seconds(entry.at_ms || 0))),
        h('td', {}, entry.type),
        h('td', {}, describe(entry))));
      section.replaceChildren(heading,
        facts([['Media t=0', doc.start_time ? new Date(doc.start_time).toISOString() : '—'], ['Entries', String(rows.length)]]),
        rows.length ? table(['At', 'Entry', 'Details'], rows, { id: 'timeline-entries' }) : h('p', { class: 'note' }, 'No entries.'));
    } catch (err) {
      section.replaceChildren(heading, errorText(err));
    }
  }

  function describe(entry) {
    const parts = [];
    if (entry.user_id) parts.push(entry.user_id + (entry.video_type ? ' (' + entry.video_type + ')' : ''));
    if (entry.layout) parts.push('layout ' + entry.layout);
    if (entry.panes) {
      parts.push(entry.panes.map((p) => (p.user_id || 'empty') + ' at ' + p.x + ',' + p.y + ' ' + p.width + '×' + p.height).join('; '));
    }
    if (entry.seconds !== undefined) parts.push(entry.seconds + ' s');
    return parts.join(' — ');
  }

  // ---- routing ----

  async function route() {
    viewTimers.forEach(clearInterval);
    viewTimers = [];
    if (viewPlayer) viewPlayer.video.pause();
    viewPlayer = null;
    if (!credential()) {
      signInView();
      return;
    }
    signOut.hidden = false;
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    try {
      if (parts[0] === 'apps' && parts.length === 2) await appView(parts[1]);
      else if (parts[0] === 'apps' && parts[2] === 'rooms' && parts.length === 4) await roomView(parts[1], parts[3]);
      else if (parts[0] === 'apps' && parts[2] === 'jobs' && parts.length === 5) await jobView(parts[1], parts[3], parts[4]);
      else await appsView();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) signInView('Signed out: ' + err.message);
      else show(h('section', {}, errorText(err)));
    }
  }

  signOut.addEventListener('click', () => {
    sessionStorage.removeItem(AUTH_KEY);
    location.hash = '#/signin';
    route();
  });
  window.addEventListener('hashchange', route);
  route();
})();
