// @ts-check
// Active speakers (the SFU's `active_speakers` message): who speaks, loudest
// first. Pure, so it is unit tested without a browser (e2e/unit/speakers.test.mjs).

/**
 * The user ids of an `active_speakers` payload, loudest first. A malformed
 * payload or entry is skipped, never thrown on: it comes from the network.
 * @param {unknown} payload `{speakers: [{userId, level}]}`
 * @returns {string[]}
 */
export function speakingUsers(payload) {
  const speakers = /** @type {{speakers?: unknown}} */ (payload ?? {}).speakers;
  if (!Array.isArray(speakers)) return [];
  const users = speakers
    .map((speaker) => (typeof speaker?.userId === "string" ? speaker.userId : null))
    .filter((userId) => userId !== null && userId !== "");
  return [...new Set(users)];
}

/**
 * What changes on screen when the list becomes `next`: who stops and who starts speaking.
 * @param {Set<string>} previous
 * @param {string[]} next
 */
export function speakerChanges(previous, next) {
  const now = new Set(next);
  return {
    stopped: [...previous].filter((userId) => !now.has(userId)),
    started: next.filter((userId) => !previous.has(userId)),
    now,
  };
}
