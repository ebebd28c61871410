// A network namespace joined to this machine by a veth pair whose downlink
// (what reaches the namespace) a `tc` token bucket limits, for a browser that
// must watch the meeting through a slow link (shaped.test.mjs).
//
// The rapat server stays on 127.0.0.1 in the root namespace. Inside the
// namespace, 127.0.0.1 on the server's ports (HTTP, the SFU's UDP and ICE-TCP)
// is rewritten to the veth's root side, which rewrites it back to 127.0.0.1,
// so the page's URL and the SFU's candidate work unchanged there. Needs root,
// `ip`, `tc` (iproute2) and `nft` (infra/services.sh ip-bin, tc-bin, nft-bin).

import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";

const run = (bin, ...args) => execFileSync(bin, args, { stdio: "pipe" }).toString();

/**
 * Builds the namespace; `close()` takes everything down again.
 * @param {{ip: string, tc: string, nft: string, ports: {tcp: number[], udp: number[]}, dir: string}} options
 */
export function shapedNamespace({ ip, tc, nft, ports, dir }) {
  const tag = process.pid % 100_000;
  const name = `rapat_e2e_${tag}`;
  const host = `rvh${tag}`;
  const inside = `rvn${tag}`;
  const subnet = 200 + (tag % 50);
  const hostIp = `10.${subnet}.${tag % 250}.1`;
  const insideIp = `10.${subnet}.${tag % 250}.2`;
  const table = `rapat_e2e_netsim_${tag}`;
  const inNs = (...args) => run(ip, "netns", "exec", name, ...args);
  const steps = [];
  const close = () => {
    for (const undo of steps.reverse()) {
      try {
        undo();
      } catch {
        // Already gone: a half-built namespace is taken down as far as it got.
      }
    }
  };
  try {
    run(ip, "netns", "add", name);
    steps.push(() => run(ip, "netns", "del", name));
    run(ip, "link", "add", host, "type", "veth", "peer", "name", inside);
    steps.push(() => run(ip, "link", "del", host));
    run(ip, "link", "set", inside, "netns", name);
    run(ip, "addr", "add", `${hostIp}/30`, "dev", host);
    run(ip, "link", "set", host, "up");
    // Packets for 127.0.0.1 may arrive on (and leave by) the veth.
    writeFileSync(`/proc/sys/net/ipv4/conf/${host}/route_localnet`, "1");
    inNs(ip, "addr", "add", `${insideIp}/30`, "dev", inside);
    inNs(ip, "link", "set", inside, "up");
    inNs(ip, "link", "set", "lo", "up");
    inNs(ip, "route", "add", "default", "via", hostIp);
    inNs("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", `net.ipv4.conf.${inside}.route_localnet=1`);
    const dnat = (proto, list) => (list.length ? `ip daddr 127.0.0.1 ${proto} dport { ${list.join(", ")} } dnat to ${hostIp};` : "");
    execFileSync(ip, ["netns", "exec", name, nft, "-f", "-"], {
      stdio: "pipe",
      input: `table ip rapat_netsim {
        chain out { type nat hook output priority -100; ${dnat("tcp", ports.tcp)} ${dnat("udp", ports.udp)} }
        chain post { type nat hook postrouting priority 100; oifname "${inside}" masquerade; }
      }`,
    });
    execFileSync(nft, ["-f", "-"], {
      stdio: "pipe",
      input: `table ip ${table} {
        chain pre { type nat hook prerouting priority -100; iifname "${host}" ip daddr ${hostIp} dnat to 127.0.0.1; }
      }`,
    });
    steps.push(() => run(nft, "delete", "table", "ip", table));
  } catch (error) {
    close();
    throw error;
  }

  mkdirSync(dir, { recursive: true });
  /** A launcher that runs `browser` inside the namespace (for Playwright's executablePath). */
  const launcher = (browser) => {
    const path = `${dir}/chromium-in-${name}.sh`;
    writeFileSync(path, `#!/bin/sh\nexec ${ip} netns exec ${name} ${browser} "$@"\n`);
    chmodSync(path, 0o755);
    return path;
  };

  let shaped = false;
  const bucket = (rate, burst) => {
    run(tc, "qdisc", shaped ? "change" : "add", "dev", host, "root", "tbf", "rate", rate, "burst", burst, "latency", "300ms");
    shaped = true;
  };
  /** Limits the namespace's downlink to `kbit` kbit/s (a token bucket, drop-tail beyond 300 ms of queue). */
  const limit = (kbit) => bucket(`${kbit}kbit`, "16kb");
  /** Lifts the limit: the same bucket, at 1 Gbit/s with a burst to match. */
  const lift = () => bucket("1gbit", "1mb");
  return { name, launcher, limit, lift, close, inNs };
}
