/**
 * @module test/e2e/builder-network-policy.test
 * The builder network policy with real parts: the compiled `serve`, the real dockerd, a `dockerd`
 * runtime builder (Debian trixie) and the unchanged depot CLI. A RUN step tries
 *   (a) a link-local address, (b) the host's API port and another service of the host through
 *   the builder network's gateway, (c) a private address, and (d) a private address the operator
 *   allowed;
 * each stood in by a listener on an address this test assigns inside a network namespace it
 * creates (veth to the host, routes from the host), never the real metadata service.
 * Enforced: (a)(b)(c) refused (the API's port leads to the registry-only listener: no API there),
 * (d) reached, and `--save` still pushes to the appliance's registry.
 * The same RUN with `builders.network_policy = "off"` reaches all of them (so the test can fail),
 * and every stop leaves no rule of ours behind while restarts add none twice.
 */
import { APPLIANCE_ID_FILE } from "../../src/appliance/state.ts";
import { policyNames } from "../../src/builders/network-policy.ts";
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { run, which } from "../../src/host/run.ts";
import { ROOT, slipwayBinary } from "../support/binary.ts";
import { DEPOT, depotEnv, finished } from "../support/depot.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway, serve, type Served } from "../support/serve.ts";
import { sh } from "../support/egress/topology.ts";

const missing =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, iptables)"
    : !existsSync(DEPOT)
      ? `the depot CLI is not installed (${DEPOT})`
      : ["ip", "iptables-restore", "ip6tables-restore", "ipset", "docker-registry"].find((p) => !which(p))
        ? `${["ip", "iptables-restore", "ip6tables-restore", "ipset", "docker-registry"].find((p) => !which(p))} is not installed`
        : await builderImageMissing("trixie");

integrationSuite("builder network policy: what a RUN step can reach", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-netpolicy-"));
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const id = Math.random().toString(16).slice(2, 8);
  const ns = `slwnp${id}`;
  const hostIf = `vnp${id}`;
  // A /24 of 10.213.0.0/16 for this run: the link, and the stand-ins' addresses inside the namespace.
  const n = 100 + Math.floor(Math.random() * 150);
  const linkHost = `10.213.${n}.1`;
  const linkNs = `10.213.${n}.2`;
  const target = { linkLocal: `169.254.213.${n}`, private: `10.214.${n}.10`, allowed: `10.215.${n}.10` };
  let listener: Subprocess<"ignore", "pipe", "inherit"> | null = null;
  /** A service of this host's, on every address (what SSH, a database or metrics would be). */
  let hostService: ReturnType<typeof Bun.serve> | null = null;
  let s: Served | null = null;
  let project = "";
  let token = "";
  let admin = "";
  let image = "";

  const start = async (policy: "enforce" | "off") => {
    s = await serve(
      slipwayBinary(),
      join(work, "data"),
      [
        "--set",
        `builders.dockerd_image=${image}`,
        "--set",
        "volumes.encryption=none",
        "--set",
        `builders.network_policy=${policy}`,
        "--set",
        `builders.network_allow=10.215.${n}.0/24`,
      ],
      {},
      // Builders reach serve on their network's gateway: it must listen beyond loopback.
      { publicHost: "localhost", listenHost: "0.0.0.0" },
    );
  };
  /** This appliance's chain name prefix (SLWB_<short>), from /readyz. */
  let chains = "";
  const ourRules = async () => {
    const clean = (t: string) =>
      t
        .split("\n")
        .filter((l) => l.includes(`${chains}_`))
        .map((l) => l.replace(/\[\d+:\d+\]/, ""));
    const v4 = clean(await sh(["iptables-save", "-t", "filter"]));
    const v6 = clean(await sh(["ip6tables-save", "-t", "filter"]));
    const sets = (await sh(["ipset", "list", "-n"]))
      .split("\n")
      .filter((l) => l.startsWith(`${chains.replace("SLWB_", "slwb").toLowerCase()}_`));
    return { v4, v6, sets };
  };
  const depot = (args: string[]) => {
    const p = Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv(s!, work, token),
    });
    return finished(p);
  };
  const gateway = async () => {
    const c = (
      (await docker.listContainers({ filters: JSON.stringify({ label: [`io.slipway.project=${project}`] }) })) as {
        NetworkSettings: { Networks: Record<string, { NetworkID: string }> };
      }[]
    )[0]!;
    const net = (await docker.getNetwork(Object.values(c.NetworkSettings.Networks)[0]!.NetworkID).inspect()) as {
      IPAM: { Config: { Gateway: string }[] };
    };
    return net.IPAM.Config[0]!.Gateway;
  };
  /** One RUN that tries every target and prints `probe NAME=reached|refused|...` for each. */
  const probe = async (nonce: string) => {
    const apiPort = new URL(s!.url).port;
    const gw = await gateway();
    const ctx = join(work, `ctx-${nonce}`);
    const tries = [
      ["linklocal", `${target.linkLocal} 80`],
      ["hostservice", `${gw} ${hostService!.port}`],
      ["private", `${target.private} 80`],
      ["allowed", `${target.allowed} 80`],
    ];
    // busybox's nc (its static wget crashes): an HTTP request by hand.
    const plain = tries.map(
      ([name, addr]) =>
        `r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${addr} 2>&1); case "$r" in *refused*) echo "probe ${name}=refused";; *stand-in*) echo "probe ${name}=reached";; *) echo "probe ${name}=other:$r" | tr '\\n' ' '; echo;; esac`,
    );
    // The API's port over TLS (busybox ssl_client behind nc): /livez is the API's, /v2/ the registry's.
    const tls = [
      ["api", "/livez"],
      ["registry", "/v2/"],
    ].map(
      ([name, path]) =>
        `r=$(nc -w 5 ${gw} ${apiPort} -e /bin/sh -c 'exec 3<&0 4>&1; printf "GET ${path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n" | ssl_client -s 4 -r 3 -n localhost >&2' 2>&1); case "$r" in *refused*) echo "probe ${name}=refused";; ${[200, 401, 404].map((c) => `*"HTTP/1.1 ${c}"*) echo "probe ${name}=http${c}";;`).join(" ")} *) echo "probe ${name}=other:$r" | tr '\\n' ' '; echo;; esac`,
    );
    const script = [...plain, ...tls].join("; ");
    writeBusyboxContext(ctx, `RUN echo ${nonce} && ${script}`);
    const built = await depot(["--save", ctx]);
    const results = Object.fromEntries([...built.log.matchAll(/probe (\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    return { ...built, results };
  };

  beforeAll(async () => {
    image = (await ensureDockerdBuilderImage({ suite: "trixie" })).ref;
    await sh(["ip", "netns", "add", ns]);
    await sh(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await sh(["ip", "addr", "add", `${linkHost}/30`, "dev", hostIf]);
    await sh(["ip", "link", "set", hostIf, "up"]);
    for (const argv of [
      ["ip", "link", "set", "lo", "up"],
      ["ip", "addr", "add", `${linkNs}/30`, "dev", "eth0"],
      ["ip", "link", "set", "eth0", "up"],
      ["ip", "route", "add", "default", "via", linkHost],
    ])
      await sh(["ip", "netns", "exec", ns, ...argv]);
    for (const a of Object.values(target)) {
      await sh(["ip", "netns", "exec", ns, "ip", "addr", "add", `${a}/32`, "dev", "lo"]);
      await sh(["ip", "route", "add", `${a}/32`, "via", linkNs]);
    }
    listener = Bun.spawn(
      [
        "ip",
        "netns",
        "exec",
        ns,
        process.execPath,
        join(ROOT, "test", "support", "egress", "http-server.ts"),
        "stand-in",
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "inherit" },
    );
    const reader = listener.stdout.getReader();
    await reader.read(); // "ready"
    reader.releaseLock();
    // The stand-ins answer from this host (so a refusal below is the policy's doing).
    for (const a of Object.values(target)) expect(await (await fetch(`http://${a}/`)).text()).toBe("stand-in");

    hostService = Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: () => new Response("stand-in") });
    await start("enforce");
    admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
    const post = async (path: string, body: unknown) =>
      (
        await s!.get(path, {
          method: "POST",
          headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        })
      ).json() as Promise<Record<string, string>>;
    project = (await post("/api/v1/orgs/default/projects", { name: "netpolicy" })).id!;
    token = (await post("/api/v1/tokens", { kind: "project", name: "ci", project })).token!;
  }, 20 * 60_000);

  afterAll(async () => {
    await s?.stop();
    listener?.kill();
    hostService?.stop(true);
    await removeBuildersOf([project], docker);
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    for (const a of Object.values(target)) await run(["ip", "route", "del", `${a}/32`]);
    await run(["ip", "link", "del", hostIf]);
    await run(["ip", "netns", "delete", ns]);
    rmSync(work, { recursive: true, force: true });
  });

  test("enforced: link-local, a service of the host and a private address are refused, the API port leads only to the registry; an allowed CIDR and --save work", async () => {
    const ready = (await (await s!.get("/readyz")).json()) as {
      checks: Record<string, { status: string; output: string }[]>;
    };
    expect(ready.checks["builders:network-policy"]![0]!.status).toBe("pass");
    chains = /chains (SLWB_[A-Z0-9]+)_IN/.exec(ready.checks["builders:network-policy"]![0]!.output)![1]!;
    // The .deb's purge finds these chains and sets from the id serve writes in the data dir.
    const applianceId = readFileSync(join(work, "data", APPLIANCE_ID_FILE), "utf8").trim();
    expect(`${policyNames(applianceId).input}`).toBe(`${chains}_IN`);
    writeBusyboxContext(join(work, "ctx-warm"), "RUN true");
    const warm = await depot([join(work, "ctx-warm")]);
    expect(warm.code, warm.log).toBe(0); // starts the builder: its gateway is known from now on
    const p = await probe(`enforced-${id}`);
    expect(p.code, p.log).toBe(0); // --save pushed through the builders' registry listener
    // The API's port leads builders to the registry-only listener: the API answers nothing
    // (404), the registry its challenge (401), so images named by the public host:port push.
    expect(p.results, p.log).toEqual({
      linklocal: "refused",
      hostservice: "refused",
      private: "refused",
      allowed: "reached",
      api: "http404",
      registry: "http401",
    });
    const images = (await (
      await s!.get(`/api/v1/projects/${project}/registry`, { headers: { authorization: `Bearer ${admin}` } })
    ).json()) as { images?: unknown[] };
    expect(images.images?.length ?? 0, JSON.stringify(images)).toBeGreaterThan(0);
  }, 600_000);

  test("stop removes every rule; a restart applies them once (idempotent)", async () => {
    const applied = await ourRules();
    expect(applied.v4.filter((l) => /^-A (INPUT|FORWARD|DOCKER-USER) /.test(l)).length).toBe(2);
    expect(applied.v6.filter((l) => /^-A (INPUT|FORWARD|DOCKER-USER) /.test(l)).length).toBe(2);
    expect(applied.sets.length).toBe(6);
    const doctor = async () =>
      (
        JSON.parse(
          (await runSlipway(slipwayBinary(), ["doctor", "--json", "--data-dir", join(work, "data")])).stdout,
        ) as { findings: { check: string; status: string; message: string }[] }
      ).findings.find((f) => f.check === "builders:network-policy")!;
    expect((await doctor()).message).toStartWith("in force");
    await s!.stop();
    expect(await ourRules()).toEqual({ v4: [], v6: [], sets: [] });
    expect((await doctor()).message).toStartWith("not in force now");
    await start("enforce"); // adopts the builder; the same rules as before, once
    expect(await ourRules()).toEqual(applied);
  }, 600_000);

  test("the same RUN reaches all of them when the operator turns the policy off", async () => {
    await s!.stop();
    await start("off");
    expect(await ourRules()).toEqual({ v4: [], v6: [], sets: [] });
    const ready = (await (await s!.get("/readyz")).json()) as {
      checks: Record<string, { status: string; output: string }[]>;
    };
    expect(ready.checks["builders:network-policy"]![0]!.status).toBe("warn");
    const p = await probe(`off-${id}`);
    expect(p.code, p.log).toBe(0);
    expect(p.results.linklocal, p.log).toBe("reached");
    expect(p.results.private, p.log).toBe("reached");
    expect(p.results.allowed, p.log).toBe("reached");
    expect(p.results.hostservice, p.log).toBe("reached");
    expect(p.results.api, p.log).toBe("http200");
  }, 600_000);
});
