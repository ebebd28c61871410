// Deletes the JetStream streams (and so key-value buckets and consumers) of one
// rapat namespace, after an end-to-end run: `node cleanup-nats.mjs <namespace>`.
//
// Only streams named after the namespace are touched: `<NS>_*` and `KV_<NS>_*`
// (the names rapat_wire::Namespace gives them). NATS_URL may list several
// servers, comma-separated, with user:password in the URL.

import { connect } from "nats";

const namespace = process.argv[2];
if (!namespace || !/^[A-Za-z0-9_-]+$/.test(namespace)) {
  console.error("usage: node cleanup-nats.mjs <namespace>");
  process.exit(2);
}
const upper = namespace.toUpperCase();
const ours = (name) => name.startsWith(`${upper}_`) || name.startsWith(`KV_${upper}_`);

const urls = (process.env.NATS_URL || "nats://127.0.0.1:4222").split(",").map((url) => new URL(url.trim()));
const credentials = urls.find((url) => url.username);

const nc = await connect({
  servers: urls.map((url) => `${url.hostname}:${url.port || 4222}`),
  name: "rapat-e2e-cleanup",
  timeout: 5000,
  ...(credentials && {
    user: decodeURIComponent(credentials.username),
    pass: decodeURIComponent(credentials.password),
  }),
});
let failed = false;
try {
  const jsm = await nc.jetstreamManager();
  const names = [];
  for await (const name of jsm.streams.names()) names.push(name);
  for (const name of names.filter(ours)) {
    await jsm.streams.delete(name).catch((error) => {
      failed = true;
      console.error(`cleanup-nats: deleting ${name}: ${error.message}`);
    });
  }
} catch (error) {
  failed = true;
  console.error(`cleanup-nats: ${error.message}`);
} finally {
  await nc.close();
}
process.exit(failed ? 1 : 0);
