// The credential and the API: the credential (HTTP Basic key id + secret, or an X-Auth-Token)
// lives in sessionStorage only, so it goes when the tab closes; every call is to this origin.

const AUTH_KEY = 'roomrec.console.auth';

export function credential() {
  try {
    return JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
  } catch (_) {
    return null;
  }
}

export function authHeaders() {
  const auth = credential();
  if (!auth) return {};
  return auth.kind === 'token' ? { 'X-Auth-Token': auth.value } : { Authorization: 'Basic ' + auth.value };
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error_msg || body.message)) || 'HTTP ' + status);
    this.status = status;
    this.code = body && body.error_code;
  }
}

// Calls the API; answers the parsed JSON body (null for none), throws ApiError otherwise.
export async function api(method, path, body) {
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

export async function signIn(method, keyId, secret, token) {
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

/** Forgets the credential (sign out). */
export function forget() {
  sessionStorage.removeItem(AUTH_KEY);
}
