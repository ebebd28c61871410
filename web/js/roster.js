// @ts-check
// Who is in the meeting and in what media state, reconciled from the server's
// messages. Pure: no DOM, no socket, no REST; meeting.js feeds it what arrives
// and shows what it says (unit-tested in e2e/unit/roster.test.mjs).
//
// Who is in the room comes from the socket: the `participants` snapshot when it
// opens, then `user_joined` / `user_left` in the order of the room's events. The
// REST list only fills in (a name, someone whose tracks came first): it is read
// from a read model that may lag those events by a moment.

/**
 * @typedef {object} Participant
 * @property {string} userId
 * @property {string} username
 * @property {boolean} audioMuted
 * @property {boolean} videoOn
 * @property {boolean} screenSharing
 * @property {boolean} mutedByHost
 * @property {boolean} unmuteRequested
 */

/**
 * A partial update; `undefined` or "" fields leave what is known as it is.
 * @typedef {{userId: string} & Partial<Omit<Participant, "userId">>} ParticipantChange
 */

/**
 * A row of GET /rooms/{id}/participants.
 * @typedef {{userId: string, firstName?: string, lastName?: string} & Partial<Omit<Participant, "userId" | "username">>} ParticipantRow
 */

export class Roster {
  /** @param {string} selfId the signed-in user, who is always present */
  constructor(selfId) {
    this.selfId = selfId;
    /** @type {Map<string, Participant>} */
    this.participants = new Map();
    /** Users whose user_left came after the last snapshot: a stale REST list must not bring them back. */
    this.gone = new Set();
  }

  /** @param {string} userId */
  get(userId) {
    return this.participants.get(userId);
  }

  /** @param {string} userId */
  has(userId) {
    return this.participants.has(userId);
  }

  /** @param {string} userId */
  isGone(userId) {
    return this.gone.has(userId);
  }

  /** @returns {Participant[]} */
  list() {
    return [...this.participants.values()];
  }

  /** @param {string} userId @param {string | undefined} [fallback] */
  nameOf(userId, fallback) {
    return this.participants.get(userId)?.username || fallback || "Someone";
  }

  /** Whether the host's mute holds for us. */
  get selfMutedByHost() {
    return Boolean(this.participants.get(this.selfId)?.mutedByHost);
  }

  /** @param {ParticipantChange} change */
  upsert(change) {
    if (!change.userId) return;
    const known = this.participants.get(change.userId) ?? {
      userId: change.userId,
      username: "",
      audioMuted: false,
      videoOn: false,
      screenSharing: false,
      mutedByHost: false,
      unmuteRequested: false,
    };
    /** @type {Record<string, unknown>} */
    const next = { ...known };
    for (const [key, value] of Object.entries(change)) if (value !== undefined && value !== "") next[key] = value;
    this.participants.set(change.userId, /** @type {Participant} */ (next));
  }

  /**
   * `user_joined`. Returns whether it is news worth telling (a join sent twice, as
   * a reconnecting client's join_room, is not; nor is our own).
   * @param {string | undefined} userId @param {string | undefined} username
   */
  joined(userId, username) {
    if (!userId) return false;
    this.gone.delete(userId);
    const news = userId !== this.selfId && !this.participants.has(userId);
    this.upsert({ userId, username });
    return news;
  }

  /**
   * `user_left`. Returns the name of who left when they were known here, else null.
   * @param {string | undefined} userId @param {string | undefined} username
   * @returns {string | null}
   */
  left(userId, username) {
    if (!userId || userId === this.selfId) return null;
    const name = this.nameOf(userId, username);
    this.gone.add(userId);
    return this.participants.delete(userId) ? name : null;
  }

  /**
   * The `participants` snapshot: replaces who is present (we always are) and
   * forgets who left before it. Returns the server's record of us, if it has one.
   * @param {ParticipantChange[]} list
   */
  snapshot(list) {
    this.gone.clear();
    const present = new Set(list.map((p) => p.userId));
    present.add(this.selfId);
    for (const userId of [...this.participants.keys()]) {
      if (!present.has(userId)) this.participants.delete(userId);
    }
    for (const participant of list) this.upsert(participant);
    return { present, me: list.find((p) => p.userId === this.selfId) ?? null };
  }

  /**
   * `mute`, `video`, `screen_share`, `unmute_allowed`, or a REST answer. Returns
   * false when it was dropped (no user, or someone who already left).
   * @param {string | undefined} userId @param {Omit<ParticipantChange, "userId">} change
   */
  mediaState(userId, change) {
    if (!userId || this.gone.has(userId)) return false;
    const next = { ...change };
    // Lifting a host's mute answers any pending request to unmute.
    if (next.mutedByHost === false) next.unmuteRequested = false;
    this.upsert({ userId, ...next });
    return true;
  }

  /**
   * (Host) `unmute_requested`. Returns false when dropped.
   * @param {string | undefined} userId
   */
  unmuteRequested(userId) {
    if (!userId || this.gone.has(userId)) return false;
    this.upsert({ userId, unmuteRequested: true });
    return true;
  }

  /**
   * Fills in from the REST list: people we do not know yet and names we lack. It
   * never removes anyone or overrides a media state the socket told us, and never
   * brings back someone who just left.
   * @param {ParticipantRow[]} rows
   */
  fillFrom(rows) {
    for (const row of rows) {
      if (this.gone.has(row.userId)) continue;
      const username = [row.firstName, row.lastName].filter(Boolean).join(" ");
      const { firstName, lastName, ...fields } = row;
      const known = this.participants.get(row.userId);
      if (!known) this.upsert({ ...fields, username });
      else if (!known.username) this.upsert({ userId: row.userId, username });
    }
  }
}
