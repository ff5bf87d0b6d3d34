// A job's page: its state (followed while it records, with Pause/Resume and Stop), files
// (played, downloaded), events (with delivery and a Redeliver button) and the timeline
// sidecar of a file.
import { api } from './api.js';
import { bytes, crumbs, errorText, every, facts, h, jobHash, link, roomHash, seconds, show, table, time } from './dom.js';
import { playerSection } from './player.js';

const LIVE_STATES = ['INIT', 'RUNNING', 'STOPPING'];

export async function jobView(appId, kind, jobId) {
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
      ['Paused', job.paused === undefined ? undefined : h('span', { id: 'job-paused' }, String(job.paused))],
      ['Started', time(job.start_time)],
      ['Stopped', time(job.stop_time)],
    ]), controls(job));
    files.replaceChildren(filesTable(job));
  };

  // Pause or resume, and stop, while the job records; the answer is the job as it is now.
  const controls = (job) => {
    if (!['INIT', 'RUNNING'].includes(job.state)) return h('div', { id: 'job-controls' });
    const command = (verb, label) => h('button', {
      type: 'button',
      id: verb + '-job',
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          renderJob(await api('POST', base + '/' + verb, {}));
        } catch (err) {
          summary.append(errorText(err));
          ev.target.disabled = false;
        }
      },
    }, label);
    const hold = job.paused ? command('resume', 'Resume') : command('pause', 'Pause');
    return h('div', { class: 'actions', id: 'job-controls' }, hold, command('stop', 'Stop'));
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

// Where a file's timeline sidecar is: its object and the presigned URL the job view gives it
// (`timeline_url`; none in a callback's event).
function timelineOf(file) {
  const object = file.timeline_object || (file.event && file.event.timeline_object);
  if (!object) return null;
  const url = file.timeline_url || null;
  return { object, url: url && /^https?:\/\//.test(url) ? url : null };
}

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
    const rows = (doc.entries || []).map((entry) => h('tr', { class: 'timeline-entry', dataset: { type: entry.type } },
      h('td', {}, h('button', {
        type: 'button',
        class: 'seek',
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
  else if (entry.type === 'join' || entry.type === 'leave') parts.push("the job's stream");
  else if (entry.type === 'speaker') parts.push('nobody');
  if (entry.layout) parts.push('layout ' + entry.layout);
  if (entry.panes) {
    parts.push(entry.panes.map((p) => 'pane ' + p.id + ': ' + (p.user_id || 'empty') +
      (p.width ? ' at ' + p.x + ',' + p.y + ' ' + p.width + '×' + p.height : '')).join('; '));
  }
  if (entry.seconds !== undefined) parts.push(entry.seconds + ' s');
  return parts.join(' — ');
}
