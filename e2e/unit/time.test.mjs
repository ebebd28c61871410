// Times in the user's time zone (web/js/time.js), without a browser:
// `node --test unit/` (npm run test:unit).

import assert from "node:assert/strict";
import { test } from "node:test";
import { formatInZone, nextQuarterHour, zoneOffset, zonedToUtc } from "../../web/js/time.js";

test("offsets follow the zone and its daylight saving", () => {
  assert.equal(zoneOffset(Date.UTC(2026, 0, 15, 12), "UTC"), 0);
  assert.equal(zoneOffset(Date.UTC(2026, 0, 15, 12), "Asia/Jakarta"), 7 * 3600 * 1000);
  assert.equal(zoneOffset(Date.UTC(2026, 0, 15, 12), "Europe/Berlin"), 3600 * 1000);
  assert.equal(zoneOffset(Date.UTC(2026, 6, 15, 12), "Europe/Berlin"), 2 * 3600 * 1000);
  assert.equal(zoneOffset(Date.UTC(2026, 6, 15, 12), "America/New_York"), -4 * 3600 * 1000);
});

test("a wall-clock time in a zone names one instant", () => {
  assert.equal(zonedToUtc("2026-11-27", "09:30", "Asia/Jakarta")?.toISOString(), "2026-11-27T02:30:00.000Z");
  assert.equal(zonedToUtc("2026-07-01", "09:00", "Europe/Berlin")?.toISOString(), "2026-07-01T07:00:00.000Z");
  assert.equal(zonedToUtc("2026-01-01", "09:00", "Europe/Berlin")?.toISOString(), "2026-01-01T08:00:00.000Z");
  // The first hour after the spring change in Berlin (29 March 2026, 02:00 → 03:00).
  assert.equal(zonedToUtc("2026-03-29", "03:30", "Europe/Berlin")?.toISOString(), "2026-03-29T01:30:00.000Z");
  assert.equal(zonedToUtc("2026-13-01", "09:00", "UTC"), null);
  assert.equal(zonedToUtc("2026-02-31", "09:00", "UTC"), null);
  assert.equal(zonedToUtc("2026-02-01", "24:00", "UTC"), null);
  assert.equal(zonedToUtc("tomorrow", "09:00", "UTC"), null);
});

test("times read in the user's zone, not the machine's", () => {
  const instant = "2026-11-27T02:30:00Z";
  assert.match(formatInZone(instant, "Asia/Jakarta"), /Nov 27, 2026, 9:30/);
  assert.match(formatInZone(instant, "UTC"), /Nov 27, 2026, 2:30/);
  assert.match(formatInZone(instant, "America/Los_Angeles"), /Nov 26, 2026, 6:30/);
  assert.equal(formatInZone("not a time", "UTC"), "");
});

test("the form's default is the next quarter hour in the zone", () => {
  const now = Date.UTC(2026, 10, 27, 2, 7);
  assert.deepEqual(nextQuarterHour("Asia/Jakarta", now), { date: "2026-11-27", time: "09:15" });
  assert.deepEqual(nextQuarterHour("UTC", Date.UTC(2026, 11, 31, 23, 50)), { date: "2027-01-01", time: "00:00" });
});
