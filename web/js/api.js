// @ts-check
// The REST client for /api/v1: the session's tokens, the error envelope, and
// one function per endpoint the client uses.
//
// Tokens live in sessionStorage: they survive a reload of the tab (so a meeting
// can be re-entered) but not the tab itself, and other tabs cannot read them.

const BASE = "/api/v1";
const SESSION_KEY = "rapat.session";
/** Refresh the access token this long before it expires (seconds). */
const EXPIRY_MARGIN = 30;

/** A failed API call: `code` is the envelope's machine code, `message` its text. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status, 0 when the server was not reached
   * @param {string} code @param {string} message
   * @param {number | null} [retryAfter] seconds, from a Retry-After header
   */
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// ---------------------------------------------------------------- session

/** @typedef {{id: string, email: string, firstName?: string, lastName?: string}} User */
/** @typedef {{token: string, refreshToken: string, user: User}} Session */

/**
 * The signed-in user's tokens, or null.
 * @returns {Session | null}
 */
export function currentSession() {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** @param {Session} session */
function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/**
 * Forgets the tokens and tells the app (main.js shows the sign-in form).
 * @param {string | null} [reason] an error code, or "logout"
 */
export function endSession(reason = null) {
  sessionStorage.removeItem(SESSION_KEY);
  window.dispatchEvent(new CustomEvent("rapat:signed-out", { detail: { reason } }));
}

/** Seconds since the epoch at which a JWT expires, or 0 when unreadable. */
function expiryOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).exp ?? 0;
  } catch {
    return 0;
  }
}

// Several requests may see an expired token at once; they share one refresh, since
// presenting the same refresh token twice would revoke the whole session.
/** @type {Promise<void> | null} */
let refreshing = null;

function refreshTokens() {
  if (!refreshing) {
    refreshing = doRefresh().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function doRefresh() {
  const session = currentSession();
  if (!session) throw new ApiError(401, "not_signed_in", "You are not signed in.");
  try {
    const data = await request("POST", "/auth/refresh", {
      body: { refreshToken: session.refreshToken },
      auth: false,
    });
    saveSession({ ...session, token: data.token, refreshToken: data.refreshToken });
  } catch (error) {
    // A refresh token that is refused will never work again: sign out. A network
    // failure is not a refusal; keep the session for the next attempt.
    if (error.status === 401) endSession(error.code);
    throw error;
  }
}

/**
 * An access token valid for at least a little while, refreshed first when it is
 * about to expire. The WebSocket URL needs one: a socket cannot retry on 401.
 */
export async function freshToken() {
  const session = currentSession();
  if (!session) throw new ApiError(401, "not_signed_in", "You are not signed in.");
  if (expiryOf(session.token) - Date.now() / 1000 < EXPIRY_MARGIN) {
    await refreshTokens();
  }
  const refreshed = currentSession();
  if (!refreshed) throw new ApiError(401, "not_signed_in", "You are not signed in.");
  return refreshed.token;
}

// ---------------------------------------------------------------- requests

/** Codes of a 401 that mean the session is over (as opposed to "expired, refresh"). */
const SESSION_OVER = new Set(["token_revoked", "invalid_token", "session_revoked", "missing_token"]);

/**
 * Sends one request and returns the envelope's `data` (or the whole envelope when
 * `whole` is set, for paginated answers). Throws ApiError for every failure.
 * @param {string} method @param {string} path
 * @param {{body?: unknown, auth?: boolean, retry?: boolean, whole?: boolean}} [options]
 * @returns {Promise<any>} the server's JSON, as SPEC.md describes it
 */
async function request(method, path, { body, auth = true, retry = true, whole = false } = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (auth) {
    const session = currentSession();
    if (!session) throw new ApiError(401, "not_signed_in", "You are not signed in.");
    headers.authorization = `Bearer ${session.token}`;
  }
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the server.");
  }
  const envelope = await response.json().catch(() => null);
  if (response.ok && envelope?.success !== false) {
    return whole ? envelope : envelope?.data ?? envelope;
  }

  const code = envelope?.error?.code ?? `http_${response.status}`;
  const message = envelope?.error?.message ?? response.statusText ?? "Request failed";
  const retryAfter = Number(response.headers.get("retry-after")) || null;
  if (response.status === 401 && auth) {
    if (code === "token_expired" && retry) {
      await refreshTokens();
      return request(method, path, { body, auth, retry: false, whole });
    }
    if (SESSION_OVER.has(code)) endSession(code);
  }
  throw new ApiError(response.status, code, message, retryAfter);
}

// ---------------------------------------------------------------- auth

/** @param {{email: string, password: string, firstName?: string, lastName?: string}} account */
export async function register({ email, password, firstName, lastName }) {
  const data = await request("POST", "/auth/register", {
    body: { email, password, firstName, lastName },
    auth: false,
  });
  return data.user;
}

export async function login(email, password) {
  const data = await request("POST", "/auth/login", { body: { email, password }, auth: false });
  saveSession({ token: data.token, refreshToken: data.refreshToken, user: data.user });
  return data.user;
}

export async function logout() {
  try {
    await request("POST", "/auth/logout", { body: {} });
  } finally {
    endSession("logout");
  }
}

/** Asks for a reset link; the server answers the same whether or not the address has an account. @param {string} email */
export function requestPasswordReset(email) {
  return request("POST", "/auth/password-reset", { body: { email }, auth: false });
}

/** Sets a new password with the emailed token; every session of the account ends. @param {string} token @param {string} password */
export function confirmPasswordReset(token, password) {
  return request("POST", "/auth/password-reset/confirm", { body: { token, password }, auth: false });
}

/** Confirms the address with the token emailed at registration. @param {string} token */
export function verifyEmail(token) {
  return request("POST", "/auth/verify-email", { body: { token }, auth: false });
}

// ---------------------------------------------------------------- rooms

const room = (id) => `/rooms/${encodeURIComponent(id)}`;

/** The caller's active rooms, newest first: the first page, at its largest size. */
export const listRooms = () => request("GET", "/rooms?limit=100");

/** `{data: [...rooms], pagination: {page, limit, total}}`. */
export const roomHistory = (page = 1, limit = 10) =>
  request("GET", `/rooms/history?page=${page}&limit=${limit}`, { whole: true });

/**
 * @param {{name?: string, description?: string, password?: string, maxUsers?: number,
 *   scheduledAt?: string, durationMinutes?: number}} room
 */
export function createRoom({ name, description, password, maxUsers, scheduledAt, durationMinutes }) {
  return request("POST", "/rooms", {
    body: {
      name,
      description: description || undefined,
      password: password || undefined,
      maxUsers,
      scheduledAt,
      durationMinutes,
    },
  });
}

/** Rooms not ended that the caller hosts or accepted, soonest first (unscheduled last). */
export const upcomingRooms = () => request("GET", "/rooms/upcoming");

/** @type {Promise<{maxUsers: number}> | null} */
let roomLimitsOnce = null;

/**
 * The limits the server puts on a room, read from its OpenAPI document (which
 * states what the server enforces), so the form's bounds never drift from the
 * server's. Asked once per page.
 * @returns {Promise<{maxUsers: number}>}
 */
export function roomLimits() {
  roomLimitsOnce ??= fetch(`${BASE}/openapi.json`)
    .then((response) => {
      if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, "Cannot read the API description.");
      return response.json();
    })
    .then((document) => {
      const maxUsers = document?.components?.schemas?.CreateRoomRequest?.properties?.maxUsers?.maximum;
      if (!Number.isInteger(maxUsers)) throw new ApiError(0, "no_limits", "The API description states no room size limit.");
      return { maxUsers };
    })
    .catch((error) => {
      roomLimitsOnce = null; // asked again next time
      throw error;
    });
  return roomLimitsOnce;
}

export const getRoom = (id) => request("GET", room(id));

/** `{room, participant}`; a wrong or missing password is a 403 `wrong_password`. */
export const joinRoom = (id, password) =>
  request("POST", `${room(id)}/join`, { body: password ? { password } : {} });

export const leaveRoom = (id) => request("POST", `${room(id)}/leave`);
export const participants = (id) => request("GET", `${room(id)}/participants`);
export const endRoom = (id) => request("POST", `${room(id)}/end`);

export const muteParticipant = (id, userId) =>
  request("POST", `${room(id)}/participants/${encodeURIComponent(userId)}/mute`);

/** Lets a participant the host muted unmute again (host only); answers their row. */
export const allowUnmute = (id, userId) =>
  request("POST", `${room(id)}/participants/${encodeURIComponent(userId)}/allow-unmute`);

export const removeParticipant = (id, userId) =>
  request("POST", `${room(id)}/participants/${encodeURIComponent(userId)}/remove`);

/** `{messages: [{id, roomId, userId, username, message, timestamp}], nextBefore}`. */
/** @param {string} id @param {string | null} [before] @param {number} [limit] */
export function chatHistory(id, before = null, limit = 50) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (before) query.set("before", before);
  return request("GET", `${room(id)}/chat?${query}`);
}

// ---------------------------------------------------------------- calendar

/** The caller's contacts, as user summaries. */
export const contacts = () => request("GET", "/users/contacts");

/** @param {string} id @param {{userIds?: string[], emails?: string[]}} invitees */
export const invite = (id, { userIds = [], emails = [] }) =>
  request("POST", `${room(id)}/invitations`, { body: { userIds, emails } });

/** The caller's pending invitations, with room name, host and scheduledAt. */
export const myInvitations = () => request("GET", "/users/invitations");

export const acceptInvitation = (id) => request("POST", `/invitations/${encodeURIComponent(id)}/accept`);
export const declineInvitation = (id) => request("POST", `/invitations/${encodeURIComponent(id)}/decline`);

/** `{timezone, locale, reminderMinutes, notifications: {<kind>: {inApp, email, push}}}`. */
export const settings = () => request("GET", "/users/settings");

/** Any part of the settings; answers all of them. */
export const updateSettings = (changes) => request("PUT", "/users/settings", { body: changes });

// ---------------------------------------------------------------- notifications

/**
 * One page of the caller's notifications, newest first: the whole envelope, whose
 * `data` is the page and which says where the next one starts.
 * @param {{unread?: boolean, cursor?: string | null, limit?: number}} [options]
 */
export function notifications({ unread = false, cursor = null, limit = 20 } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (unread) query.set("unread", "true");
  if (cursor) query.set("cursor", cursor);
  return request("GET", `/notifications?${query}`, { whole: true });
}

/** @returns {Promise<number>} */
export const unreadCount = () => request("GET", "/notifications/unread-count").then((data) => data.count ?? 0);

export const markRead = (id) => request("POST", `/notifications/${encodeURIComponent(id)}/read`);
export const markAllRead = () => request("POST", "/notifications/read-all");

// ---------------------------------------------------------------- web push

/** The deployment's VAPID public key (base64url), for `applicationServerKey`. */
export const vapidPublicKey = () =>
  request("GET", "/push/vapid-public-key", { auth: false }).then((data) => String(data.publicKey));

/** Registers this browser's PushSubscription (its `toJSON()`). */
export const pushSubscribe = (subscription) => request("POST", "/push/subscriptions", { body: subscription });

/** @param {string} endpoint */
export const pushUnsubscribe = (endpoint) => request("DELETE", "/push/subscriptions", { body: { endpoint } });

// ---------------------------------------------------------------- recording (SPEC §10)

/** Host only; answers the room (`recording: true`). 409 `already_recording`. */
export const startRecording = (id) => request("POST", `${room(id)}/recording/start`);

/** Host only; answers the room (`recording: false`). 409 `not_recording`. */
export const stopRecording = (id) => request("POST", `${room(id)}/recording/stop`);

/** Host only: `[{id, userId, kind, codec, startedAt, durationMs, bytes}]`. */
export const recordings = (id) => request("GET", `${room(id)}/recordings`);

/**
 * One recorded track's file, as a Blob. The file needs the access token, which a
 * plain link cannot carry, so it is fetched and handed to the page as a Blob.
 * @param {string} id @param {string} recordingId @returns {Promise<Blob>}
 */
export async function downloadRecording(id, recordingId) {
  const token = await freshToken();
  let response;
  try {
    response = await fetch(`${BASE}${room(id)}/recordings/${encodeURIComponent(recordingId)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the server.");
  }
  if (!response.ok) {
    const envelope = await response.json().catch(() => null);
    const code = envelope?.error?.code ?? `http_${response.status}`;
    throw new ApiError(response.status, code, envelope?.error?.message ?? "Download failed");
  }
  return response.blob();
}
