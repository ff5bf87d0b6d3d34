// DOM helpers: every value reaches the page as text (textContent), never as HTML; and the
// view on screen (its breadcrumbs, content, timers and player).

import { ApiError } from './api.js';

export const NOT_YET = '0001-01-01T00:00:00Z';
const main = document.getElementById('main');
const where = document.getElementById('where');
// Timers and the player of the view on screen, cleared when another view opens.
export const view = { timers: [], player: null };

export function h(tag, attrs, ...children) {
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

export function link(hash, text) {
  return h('a', { href: hash }, text);
}

export function table(headers, rows, attrs) {
  return h('table', attrs, h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))), h('tbody', {}, rows));
}

export function facts(pairs) {
  return h('dl', {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function time(value) {
  return !value || value === NOT_YET ? '—' : value.replace('T', ' ').replace('Z', ' UTC');
}

export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

export function seconds(ms) {
  const s = ms / 1000;
  const m = Math.floor(s / 60);
  return m + ':' + (s - m * 60).toFixed(3).padStart(6, '0');
}

export function errorText(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof ApiError ? err.status + ': ' + err.message : String(err));
}

export function crumbs(parts) {
  where.replaceChildren(...parts.flatMap(([hash, text], i) => [i ? ' / ' : '', link(hash, text)]));
}

export function show(...nodes) {
  main.replaceChildren(...nodes);
}

export function every(ms, fn) {
  view.timers.push(setInterval(fn, ms));
}

/** Stops what the view on screen runs (its timers, its player) before another opens. */
export function leaveView() {
  view.timers.forEach(clearInterval);
  view.timers = [];
  if (view.player) view.player.video.pause();
  view.player = null;
}

export function roomHash(appId, roomId) {
  return '#/apps/' + encodeURIComponent(appId) + '/rooms/' + encodeURIComponent(roomId);
}

export function jobHash(appId, kind, jobId) {
  return '#/apps/' + encodeURIComponent(appId) + '/jobs/' + kind + '/' + encodeURIComponent(jobId);
}
