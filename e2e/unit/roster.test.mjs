// The meeting's participant state (web/js/roster.js) reconciled from server
// messages, without a browser: `node --test unit/` (npm run test:unit).

import assert from "node:assert/strict";
import { test } from "node:test";
import { Roster } from "../../web/js/roster.js";

const ME = "me";
const names = (roster) => roster.list().map((p) => p.userId).sort();

test("a snapshot sets who is present, and we are always among them", () => {
  const roster = new Roster(ME);
  roster.upsert({ userId: ME, username: "Ayu" });
  const { present, me } = roster.snapshot([{ userId: "budi", username: "Budi", audioMuted: true }]);
  assert.deepEqual([...present].sort(), ["budi", ME]);
  assert.equal(me, null, "the server listed no record of us");
  assert.deepEqual(names(roster), ["budi", ME]);
  assert.equal(roster.get("budi")?.audioMuted, true);
  assert.equal(roster.get(ME)?.username, "Ayu");
});

test("a join is news once; our own join and a repeated join are not", () => {
  const roster = new Roster(ME);
  assert.equal(roster.joined(ME, "Ayu"), false);
  assert.equal(roster.joined("budi", "Budi"), true);
  assert.equal(roster.joined("budi", "Budi"), false);
  assert.equal(roster.joined(undefined, "Nobody"), false);
  assert.deepEqual(names(roster), ["budi", ME]);
  assert.equal(roster.get("budi")?.username, "Budi");
});

test("a join without a name keeps the name already known", () => {
  const roster = new Roster(ME);
  roster.joined("budi", "Budi");
  roster.joined("budi", undefined);
  assert.equal(roster.get("budi")?.username, "Budi");
});

test("a leave removes the participant and names them; a leave of someone unknown or of us does not", () => {
  const roster = new Roster(ME);
  roster.joined(ME, "Ayu");
  roster.joined("budi", "Budi");
  assert.equal(roster.left("budi", "ignored"), "Budi");
  assert.deepEqual(names(roster), [ME]);
  assert.equal(roster.left("budi", "Budi"), null, "already gone");
  assert.equal(roster.left("citra", "Citra"), null, "never known");
  assert.equal(roster.left(ME, "Ayu"), null);
  assert.deepEqual(names(roster), [ME]);
});

test("mute, video and screen share change one participant's media state", () => {
  const roster = new Roster(ME);
  roster.joined("budi", "Budi");
  assert.equal(roster.mediaState("budi", { audioMuted: true }), true);
  roster.mediaState("budi", { videoOn: true });
  roster.mediaState("budi", { screenSharing: true });
  assert.deepEqual(roster.get("budi"), {
    userId: "budi",
    username: "Budi",
    audioMuted: true,
    videoOn: true,
    screenSharing: true,
    mutedByHost: false,
    unmuteRequested: false,
  });
  roster.mediaState("budi", { audioMuted: false, mutedByHost: false });
  assert.equal(roster.get("budi")?.audioMuted, false);
});

test("a host's mute, a request to unmute, and the host allowing it", () => {
  const roster = new Roster(ME);
  roster.joined(ME, "Ayu");
  roster.mediaState(ME, { audioMuted: true, mutedByHost: true });
  assert.equal(roster.selfMutedByHost, true);
  // Our own mute meanwhile (mutedByHost undefined) leaves the host's as it is.
  roster.mediaState(ME, { audioMuted: true, mutedByHost: undefined });
  assert.equal(roster.selfMutedByHost, true);
  assert.equal(roster.unmuteRequested(ME), true);
  assert.equal(roster.get(ME)?.unmuteRequested, true);
  roster.mediaState(ME, { mutedByHost: false });
  assert.equal(roster.selfMutedByHost, false);
  assert.equal(roster.get(ME)?.unmuteRequested, false, "allowing answers the request");
  assert.equal(roster.get(ME)?.audioMuted, true, "still muted until its owner unmutes");
});

test("the host removes someone: later messages about them are dropped", () => {
  const roster = new Roster(ME);
  roster.snapshot([{ userId: "citra", username: "Citra" }]);
  assert.equal(roster.left("citra", "Citra"), "Citra");
  // A mute or request to unmute that was in flight when they left.
  assert.equal(roster.mediaState("citra", { audioMuted: true }), false);
  assert.equal(roster.unmuteRequested("citra"), false);
  assert.equal(roster.has("citra"), false);
  assert.equal(roster.mediaState(undefined, { audioMuted: true }), false);
});

test("a late joiner's snapshot has everyone already there, with their state", () => {
  const roster = new Roster("citra");
  const { me } = roster.snapshot([
    { userId: "ayu", username: "Ayu", videoOn: true },
    { userId: "budi", username: "Budi", audioMuted: true, screenSharing: true },
    { userId: "citra", username: "Citra" },
  ]);
  assert.equal(me?.userId, "citra");
  assert.deepEqual(names(roster), ["ayu", "budi", "citra"]);
  assert.equal(roster.get("ayu")?.videoOn, true);
  assert.equal(roster.get("budi")?.screenSharing, true);
});

test("a reconnect's fresh snapshot drops who left while we were away and keeps the rest", () => {
  const roster = new Roster(ME);
  roster.upsert({ userId: ME, username: "Ayu" });
  roster.snapshot([
    { userId: "budi", username: "Budi" },
    { userId: "citra", username: "Citra" },
    { userId: "fajar", username: "Fajar" },
  ]);
  roster.mediaState("budi", { audioMuted: true });
  roster.left("citra", "Citra");
  // Away: budi unmuted, citra came back, fajar left.
  roster.snapshot([
    { userId: "budi", username: "Budi", audioMuted: false },
    { userId: "citra", username: "Citra" },
  ]);
  assert.deepEqual(names(roster), ["budi", "citra", ME]);
  assert.equal(roster.get("budi")?.audioMuted, false);
  assert.equal(roster.isGone("citra"), false, "the snapshot forgets earlier leaves");
});

test("a stale REST list fills in names and people but never brings back who left", () => {
  const roster = new Roster(ME);
  roster.joined("budi", undefined); // tracks or a join without a name came first
  roster.joined("citra", "Citra");
  roster.mediaState("citra", { audioMuted: true });
  roster.left("dian", "Dian");
  roster.fillFrom([
    { userId: "budi", firstName: "Budi", lastName: "Santoso" },
    { userId: "citra", firstName: "C", audioMuted: false }, // lags the socket
    { userId: "dian", firstName: "Dian" }, // left after the read model was read
    { userId: "eka", firstName: "Eka", videoOn: true }, // not yet seen on the socket
  ]);
  assert.deepEqual(names(roster), ["budi", "citra", "eka"]);
  assert.equal(roster.get("budi")?.username, "Budi Santoso");
  assert.equal(roster.get("citra")?.username, "Citra", "a known name stays");
  assert.equal(roster.get("citra")?.audioMuted, true, "the socket's media state stays");
  assert.equal(roster.get("eka")?.username, "Eka");
  assert.equal(roster.get("eka")?.videoOn, true);
  assert.equal(roster.has("dian"), false);
});

test("out of order: a leave before the join it follows leaves them out until a join or snapshot", () => {
  const roster = new Roster(ME);
  // user_left of an earlier stay arrives, then a REST row from before it.
  roster.left("budi", "Budi");
  roster.fillFrom([{ userId: "budi", firstName: "Budi" }]);
  assert.equal(roster.has("budi"), false);
  // Their next join is in the room's order and counts.
  assert.equal(roster.joined("budi", "Budi"), true);
  assert.equal(roster.mediaState("budi", { videoOn: true }), true);
  assert.equal(roster.get("budi")?.videoOn, true);
});
