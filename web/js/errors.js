// @ts-check
// What to tell a person for each error code the server (REST envelope or a
// WebSocket `error` / close) can send. Codes not listed here show the server's own
// message, which is written for people too (e.g. why a password is too weak).

const MESSAGES = {
  // auth
  invalid_credentials: "The email or password is wrong.",
  email_taken: "An account with this email already exists. Sign in instead.",
  token_expired: "Your session expired. Please sign in again.",
  token_revoked: "Your session has ended. Please sign in again.",
  session_revoked: "Your session has ended. Please sign in again.",
  invalid_token: "Your session is not valid any more. Please sign in again.",
  invalid_refresh_token: "Your session has ended. Please sign in again.",
  refresh_token_reused: "Your session was ended for safety. Please sign in again.",
  refresh_token_expired: "Your session expired. Please sign in again.",
  not_signed_in: "Please sign in first.",
  // rooms
  wrong_password: "That room password is wrong.",
  room_full: "This room is full: it has reached its participant limit.",
  room_ended: "This meeting has ended.",
  room_not_found: "There is no room at this link.",
  not_host: "Only the host can do that.",
  not_a_participant: "That person is no longer in the room.",
  cannot_remove_host: "The host cannot be removed from their own room.",
  max_users_below_participants: "More people are in the room than that limit allows.",
  removed: "The host removed you from the meeting.",
  left: "You left this meeting (perhaps from another tab or window).",
  not_participant: "You are no longer in this meeting: the host may have removed you, or you left it elsewhere.",
  // transport
  rate_limited: "Too many attempts. Please wait a moment and try again.",
  service_unavailable: "The server is busy or one of its services is down. Try again shortly.",
  network_error: "Cannot reach the server. Check your connection.",
  internal_error: "Something went wrong on the server.",
  concurrent_change: "Someone changed this at the same time. Please try again.",
  // signaling
  sfu_unavailable: "The media server is not available right now: chat works, video and audio do not.",
  unavailable: "A message could not be sent. Try again.",
  invalid_message: "A chat message must be 1 to 2000 characters.",
  chat_unavailable: "The message could not be stored, so it was not sent. Try again.",
  muted_by_host: "The host muted you. Ask to unmute, and the host can let you.",
  not_muted_by_host: "The host has not muted you: you can unmute yourself.",
  replaced: "This meeting was opened again in another tab or window, so this one was disconnected.",
  too_many_sockets: "You have too many meeting windows open. Close one and try again.",
  peer_replaced: "This meeting's media moved to a newer window of yours, so this one stopped receiving it.",
};

/** A sentence for an ApiError (or any error with `code` and `message`). */
export function describe(error) {
  if (!error) return "Something went wrong.";
  if (error.code === "rate_limited" && error.retryAfter) {
    return `Too many attempts. Try again in ${error.retryAfter} s.`;
  }
  return MESSAGES[error.code] ?? error.message ?? String(error);
}

/** WebSocket close codes of the signaling server (gateway/src/ws/mod.rs). */
export const CLOSE = {
  BAD_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  NOT_PARTICIPANT: 4403,
  UNKNOWN_ROOM: 4404,
  TIMED_OUT: 4408,
  REMOVED: 4409,
  ROOM_ENDED: 4410,
  LEFT: 4499, // left the room through REST (from this or another tab)
  REPLACED: 4420, // a newer socket of ours in this room took this one's place
  TOO_MANY_SOCKETS: 4429,
  POLICY: 1008, // too many messages of one kind
  TOO_BIG: 1009,
  SERVICE_RESTART: 1012, // the server is shutting down: reconnect (not final)
};

/** Media errors from getUserMedia / getDisplayMedia, in plain words. */
export function describeMediaError(error, what = "camera or microphone") {
  switch (error?.name) {
    case "NotAllowedError":
      return `Access to the ${what} was refused. You can still join and listen.`;
    case "NotFoundError":
      return `No ${what} was found.`;
    case "NotReadableError":
      return `The ${what} is in use by another application.`;
    default:
      return `Cannot use the ${what}: ${error?.message ?? error}`;
  }
}
