// Deletes the JetStream streams (and so key-value buckets and consumers) of one
// rapat namespace, after an end-to-end run: `node cleanup-nats.mjs <namespace>`.
//
// It speaks the NATS text protocol directly (CONNECT, SUB, PUB, MSG) over a
// socket, so the test needs no NATS client package for this one chore. Only
// streams named after the namespace are touched: `<NS>_*` and `KV_<NS>_*`.

import net from "node:net";

const namespace = process.argv[2];
if (!namespace || !/^[A-Za-z0-9_-]+$/.test(namespace)) {
  console.error("usage: node cleanup-nats.mjs <namespace>");
  process.exit(2);
}
const upper = namespace.toUpperCase();
const ours = (name) => name.startsWith(`${upper}_`) || name.startsWith(`KV_${upper}_`);

const url = new URL(process.env.NATS_URL?.split(",")[0] || "nats://127.0.0.1:4222");
const socket = net.connect(Number(url.port) || 4222, url.hostname);
const inbox = `_INBOX.rapat_e2e_cleanup.${process.pid}`;
const waiting = new Map();
let buffer = Buffer.alloc(0);
let counter = 0;

function write(line, payload = null) {
  socket.write(payload === null ? `${line}\r\n` : `${line}\r\n${payload}\r\n`);
}

// MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n
function parse() {
  for (;;) {
    const end = buffer.indexOf("\r\n");
    if (end < 0) return;
    const line = buffer.subarray(0, end).toString();
    if (line.startsWith("MSG ")) {
      const parts = line.split(" ");
      const size = Number(parts[parts.length - 1]);
      if (buffer.length < end + 2 + size + 2) return; // wait for the whole payload
      const payload = buffer.subarray(end + 2, end + 2 + size).toString();
      buffer = buffer.subarray(end + 2 + size + 2);
      waiting.get(parts[1])?.(payload);
      waiting.delete(parts[1]);
      continue;
    }
    buffer = buffer.subarray(end + 2);
    if (line === "PING") write("PONG");
    else if (line.startsWith("-ERR")) console.error(`nats: ${line}`);
  }
}

socket.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  parse();
});

function request(subject, body) {
  const reply = `${inbox}.${++counter}`;
  const answer = new Promise((resolve, reject) => {
    waiting.set(reply, (text) => resolve(JSON.parse(text)));
    setTimeout(() => reject(new Error(`no answer to ${subject}`)), 5000);
  });
  write(`PUB ${subject} ${reply} ${Buffer.byteLength(body)}`, body);
  return answer;
}

async function main() {
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const connect = { verbose: false, pedantic: false, protocol: 1, name: "rapat-e2e-cleanup" };
  if (url.username) Object.assign(connect, { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) });
  write(`CONNECT ${JSON.stringify(connect)}`);
  write(`SUB ${inbox}.* 1`);

  const names = [];
  for (let offset = 0; ; ) {
    const page = await request("$JS.API.STREAM.NAMES", JSON.stringify({ offset }));
    if (page.error) throw new Error(page.error.description);
    names.push(...(page.streams ?? []));
    offset += (page.streams ?? []).length;
    if (!page.streams?.length || offset >= page.total) break;
  }
  for (const name of names.filter(ours)) {
    const answer = await request(`$JS.API.STREAM.DELETE.${name}`, "");
    if (answer.error) console.error(`nats: deleting ${name}: ${answer.error.description}`);
  }
}

main()
  .then(() => socket.end())
  .catch((error) => {
    console.error(`cleanup-nats: ${error.message}`);
    socket.destroy();
    process.exit(1);
  })
  .finally(() => setTimeout(() => process.exit(process.exitCode ?? 0), 100).unref());
