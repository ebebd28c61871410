// The active-speakers message (web/js/speakers.js) as the client reads it,
// without a browser: `node --test unit/`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { speakerChanges, speakingUsers } from "../../web/js/speakers.js";

test("the speakers of a payload, loudest first", () => {
  const payload = { speakers: [{ userId: "budi", level: 0.92 }, { userId: "ayu", level: 0.76 }] };
  assert.deepEqual(speakingUsers(payload), ["budi", "ayu"]);
  assert.deepEqual(speakingUsers({ speakers: [] }), []);
});

test("a malformed payload or entry is skipped, not thrown on", () => {
  for (const payload of [undefined, null, {}, { speakers: "budi" }, { speakers: null }, 7]) {
    assert.deepEqual(speakingUsers(payload), [], JSON.stringify(payload));
  }
  const mixed = { speakers: [null, { level: 1 }, { userId: 5 }, { userId: "" }, { userId: "ayu" }, { userId: "ayu" }] };
  assert.deepEqual(speakingUsers(mixed), ["ayu"]);
});

test("a new list says who stopped and who started speaking", () => {
  const { stopped, started, now } = speakerChanges(new Set(["ayu", "budi"]), ["budi", "citra"]);
  assert.deepEqual(stopped, ["ayu"]);
  assert.deepEqual(started, ["citra"]);
  assert.deepEqual([...now], ["budi", "citra"]);
  assert.deepEqual(speakerChanges(new Set(["ayu"]), []).stopped, ["ayu"]);
});
