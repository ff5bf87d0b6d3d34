// The roomrec web console: plain DOM over the API of this same origin. This module signs in
// and routes; the job page is job.js.
import { api, ApiError, credential, forget, signIn } from './api.js';
import { crumbs, errorText, every, facts, h, jobHash, leaveView, link, roomHash, show, table, time } from './dom.js';
import { jobView } from './job.js';

const signOut = document.getElementById('sign-out');

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
      forget();
      error.textContent = err instanceof ApiError ? err.status + ': ' + err.message : String(err);
    }
  });
  show(h('section', {}, h('h1', {}, 'Sign in'),
    h('p', { class: 'note' }, 'The credential stays in this tab (session storage) and is sent only to this API.'), form));
}

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

async function route() {
  leaveView();
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
  forget();
  location.hash = '#/signin';
  route();
});
window.addEventListener('hashchange', route);
route();
