// HTTP to our own server. Access (README "Access control"): a client token from `?token=` goes to
// /ws and the APIs; an admin token from `#admin=` (then dropped from the address bar) or asked
// for, for replay control, kept for this tab only (sessionStorage).

import { adminFromHash } from "./logic/access.js";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const AUTH = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
const ADMIN_KEY = "ticker.admin";

/** The page's client token (`?token=`), or null: ticker-client.js hands it to /ws. */
export const CLIENT_TOKEN = TOKEN;

/** A parameter of the page's URL (null when absent). */
export function param(name) {
  return params.get(name);
}

/** Move `#admin=` from the address bar into this tab's storage. */
export function takeAdminFromHash() {
  const { admin, hash } = adminFromHash(location.hash);
  if (!admin) return;
  rememberAdmin(admin);
  history.replaceState(null, "", location.pathname + location.search + hash);
}

export function adminToken() {
  try {
    return sessionStorage.getItem(ADMIN_KEY);
  } catch {
    return null;
  }
}

/** Keep the admin token for this tab; with storage off it is asked for again when needed. */
export function rememberAdmin(token) {
  try {
    sessionStorage.setItem(ADMIN_KEY, token);
  } catch {
    /* storage off: it is asked for when needed */
  }
}

/** fetch() with the page's client token, if any. */
export function api(url, init = {}) {
  return fetch(url, { ...init, headers: { ...AUTH, ...(init.headers || {}) } });
}

export function historyUrl(sym, interval, limit) {
  return `/api/history?symbol=${encodeURIComponent(sym)}&interval=${interval}&limit=${limit}`;
}
