/**
 * @module cli/client/build-session
 * `slipway build` and `slipway buildkit-env`, client side: the same build API the depot CLI uses
 * (Connect JSON), then a BuildKit client found on this machine — `docker buildx` (a temporary
 * remote-driver builder holding the per-build certificate) or `buildctl` — pointed at the
 * appliance's build endpoint. Health every 5 s; `cancels_at` stops the client; the certificates
 * live in a private temp dir removed at the end.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import tls from "node:tls";
import { PreconditionError, UsageError } from "../../errors.ts";
import { run, which } from "../../host/run.ts";
import { builderPlatformOf } from "../../wire/depot.ts";
import { rpc } from "../../api-client/connect.ts";
import { apiClientFactory, type ApiClient } from "../../api-client/index.ts";

export type Env = Record<string, string | undefined>;

/**
 * The project, by id or as ORG/NAME (the server resolves either): --project, SLIPWAY_PROJECT,
 * then slipway.json ({"id": …}) found upward from `dir`.
 */
export function resolveProject(flag: string | undefined, env: Env, dir: string): string | null {
  if (flag) return checkedProjectRef(flag, "--project");
  if (env.SLIPWAY_PROJECT) return checkedProjectRef(env.SLIPWAY_PROJECT, "SLIPWAY_PROJECT");
  for (let d = resolve(dir); ; d = dirname(d)) {
    const f = join(d, "slipway.json");
    if (existsSync(f)) {
      let id: unknown;
      try {
        id = (JSON.parse(readFileSync(f, "utf8")) as { id?: unknown }).id;
      } catch {
        throw new UsageError(`${f} is not valid JSON; expected {"id": "prj_…"}`);
      }
      if (typeof id !== "string" || !id) throw new UsageError(`${f} has no "id"; expected {"id": "prj_…"}`);
      return checkedProjectRef(id, `${f}: "id"`);
    }
    if (dirname(d) === d) return null;
  }
}

function checkedProjectRef(ref: string, where: string): string {
  const parts = ref.split("/");
  if (parts.length > 2 || parts.some((p) => p.trim() === "") || ref.length > 200)
    throw new UsageError(`${where} ${JSON.stringify(ref)}: expected a project id or ORG/NAME`);
  return ref;
}

/**
 * A CI job's OIDC token, when running in CI and no other credential was given: GitHub Actions
 * (asked for `audience`), CircleCI, Buildkite (asked for `audience`), GitLab or any CI that puts
 * a token in SLIPWAY_OIDC_TOKEN. Null outside CI.
 */
export async function ciOidcToken(env: Env, audience: string, fetchFn: typeof fetch = fetch): Promise<string | null> {
  if (env.SLIPWAY_OIDC_TOKEN) return env.SLIPWAY_OIDC_TOKEN;
  if (env.ACTIONS_ID_TOKEN_REQUEST_URL && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    const url = new URL(env.ACTIONS_ID_TOKEN_REQUEST_URL);
    url.searchParams.set("audience", audience);
    const r = await fetchFn(url, {
      headers: { authorization: `bearer ${env.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` },
      signal: AbortSignal.timeout(15_000),
    });
    if (!r.ok)
      throw new PreconditionError(
        `GitHub Actions refused an OIDC token (HTTP ${r.status}); does the job have 'permissions: id-token: write'?`,
      );
    const value = ((await r.json()) as { value?: string }).value;
    if (!value) throw new PreconditionError("GitHub Actions answered without an OIDC token");
    return value;
  }
  if (env.CIRCLE_OIDC_TOKEN_V2) return env.CIRCLE_OIDC_TOKEN_V2;
  if (env.BUILDKITE_AGENT_ACCESS_TOKEN) {
    const r = await run(["buildkite-agent", "oidc", "request-token", "--audience", audience], { timeoutMs: 15_000 });
    if (r.code === 0 && r.stdout.trim()) return r.stdout.trim();
    throw new PreconditionError(`buildkite-agent oidc request-token failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return null;
}

export interface BuildArgs {
  context: string;
  platforms: string[];
  tags: string[];
  file?: string;
  buildArgs: string[];
  target?: string;
  push: boolean;
  /** Into the local Docker: buildx --load, or buildctl's docker tarball piped to `docker load`. */
  load: boolean;
  outputs: string[];
  noCache: boolean;
  progress: "auto" | "plain";
}

export type BuildkitClient = { kind: "buildx"; path: string } | { kind: "buildctl"; path: string };

/** docker-buildx (standalone or as a Docker CLI plugin), else buildctl; null when neither is here. */
export function findBuildkitClient(env: Env): BuildkitClient | null {
  const plugin = [
    which("docker-buildx"),
    join(env.HOME ?? homedir(), ".docker", "cli-plugins", "docker-buildx"),
    "/usr/local/lib/docker/cli-plugins/docker-buildx",
    "/usr/libexec/docker/cli-plugins/docker-buildx",
    "/usr/lib/docker/cli-plugins/docker-buildx",
  ].find((p) => p && existsSync(p));
  if (plugin) return { kind: "buildx", path: plugin };
  const buildctl = which("buildctl");
  return buildctl ? { kind: "buildctl", path: buildctl } : null;
}

export const NO_CLIENT =
  "no BuildKit client on this machine: install docker-buildx (Debian trixie's package docker-buildx is a static build that also runs on bookworm) or buildctl";

export interface Active {
  platform: string;
  endpoint: string;
  /** A unix socket forwarding to `endpoint` with the certificate (forwardSocket), when one runs. */
  local?: string;
  serverName: string;
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

export interface Session {
  buildId: string;
  buildUrl: string;
  /** Connections per platform, certificates written in `dir` (0700, removed by close()). */
  connections: Active[];
  dir: string;
  /** Reports health for every platform; resolves to the cancel time if the build is to stop. */
  health(): Promise<Date | null>;
  finish(result: { success: true } | { error: string } | { canceled: true }): Promise<void>;
  close(): void;
}

/** A warm builder answers well within this; a longer wait is a builder starting. */
export const WAIT_NOTE_AFTER_MS = 400;
const WAIT_NOTE_EVERY_MS = 3000;

/**
 * CreateBuild, then GetBuildKitConnection per platform until active. `onWait` is told when a
 * platform's builder is still starting: after WAIT_NOTE_AFTER_MS, then every few seconds.
 */
export async function openSession(
  api: ApiClient,
  server: string,
  caPem: string | undefined,
  projectId: string,
  platforms: string[],
  options: {
    tags: string[];
    push: boolean;
    load?: boolean;
    outputs: { kind: string; attributes: Record<string, string> }[];
    target?: string;
  },
  onWait: (platform: string, waitedMs: number) => void,
): Promise<Session> {
  const created = await rpc<{ buildId: string; buildToken: string; buildUrl: string }>(
    api,
    "depot.cli.v1.BuildService/CreateBuild",
    {
      projectId,
      options: [
        {
          command: "COMMAND_BUILD",
          tags: options.tags,
          push: options.push,
          load: options.load === true,
          outputs: options.outputs,
          ...(options.target ? { targetName: options.target } : {}),
        },
      ],
    },
  );
  const buildApi = apiClientFactory({ server, token: created.buildToken, caPem });
  const dir = mkdtempSync(join(tmpdir(), "slipway-build-"));
  const finish = async (result: { success: true } | { error: string } | { canceled: true }) => {
    const body =
      "success" in result ? { success: {} } : "error" in result ? { error: { error: result.error } } : { canceled: {} };
    await rpc(buildApi, "depot.cli.v1.BuildService/FinishBuild", { buildId: created.buildId, ...body });
  };
  try {
    for (const platform of platforms) {
      if (!builderPlatformOf(platform))
        throw new UsageError(`--platform ${platform}: expected linux/amd64 or linux/arm64`);
    }
    // Health is reported while builders start too, as the depot CLI does: a start slower than
    // builds.health_timeout_seconds must not expire the build before it connects.
    const reportHealth = () => {
      for (const platform of platforms)
        void rpc(buildApi, "depot.cli.v1.BuildService/ReportBuildHealth", {
          buildId: created.buildId,
          platform: builderPlatformOf(platform),
        }).catch(() => {});
    };
    /** Asks until the platform's builder is there; the server holds each ask while it starts. */
    const untilActive = async (platform: string): Promise<Active> => {
      for (;;) {
        const r = await rpc<{
          pending?: { waitMs?: number };
          active?: {
            endpoint: string;
            serverName: string;
            cert: { cert: string; key: string };
            caCert: { cert: string };
          };
        }>(buildApi, "depot.cli.v1.BuildService/GetBuildKitConnection", {
          buildId: created.buildId,
          platform: builderPlatformOf(platform),
        });
        if (r.active) {
          const p = join(dir, platform.replaceAll("/", "-"));
          const files = { ca: `${p}-ca.pem`, cert: `${p}-cert.pem`, key: `${p}-key.pem` };
          writeFileSync(files.ca, r.active.caCert.cert, { mode: 0o600 });
          writeFileSync(files.cert, r.active.cert.cert, { mode: 0o600 });
          writeFileSync(files.key, r.active.cert.key, { mode: 0o600 });
          return { platform, endpoint: r.active.endpoint, serverName: r.active.serverName, dir, ...files };
        }
        // A hold that ran out answers a short wait_ms: honour it (down to 10 ms, so a server
        // answering 0 cannot spin us).
        await Bun.sleep(Math.min(Math.max(r.pending?.waitMs ?? 1000, 10), 5000));
      }
    };
    const starting = setInterval(reportHealth, 5000);
    // Every platform's builder starts at once: the waits overlap.
    const connections: Active[] = await Promise.all(
      platforms.map(async (platform) => {
        // Each ask is held up to 5 s, so a note paced by the answers would come late: a timer says
        // "starting" once the wait is longer than a warm builder's answer, then every few seconds.
        const t0 = Date.now();
        let noting = setTimeout(function note() {
          onWait(platform, Date.now() - t0);
          noting = setTimeout(note, WAIT_NOTE_EVERY_MS);
        }, WAIT_NOTE_AFTER_MS);
        try {
          return await untilActive(platform);
        } finally {
          clearTimeout(noting);
        }
      }),
    ).finally(() => clearInterval(starting));
    return {
      buildId: created.buildId,
      buildUrl: created.buildUrl,
      connections,
      dir,
      async health() {
        let cancel: Date | null = null;
        for (const c of connections) {
          const r = await rpc<{ cancelsAt?: string }>(buildApi, "depot.cli.v1.BuildService/ReportBuildHealth", {
            buildId: created.buildId,
            platform: builderPlatformOf(c.platform),
          });
          if (r.cancelsAt) cancel = new Date(r.cancelsAt);
        }
        return cancel;
      },
      finish,
      close: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    await finish({ error: (e as Error).message }).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The argv (and environment) that runs the build with `client` against the session's builders;
 * `loadInto`, when set, is the command the build's stdout (a docker tarball) is piped into.
 */
export function buildCommands(
  client: BuildkitClient,
  s: Pick<Session, "buildId" | "connections" | "dir">,
  a: BuildArgs,
): { setup: string[][]; build: string[]; teardown: string[][]; env: Env; loadInto?: string[] } {
  if (client.kind === "buildx") {
    const name = `slipway-${s.buildId}`;
    const setup = s.connections.map((c, i) => [
      client.path,
      "create",
      ...(i === 0 ? [] : ["--append"]),
      "--name",
      name,
      "--node",
      `${name}-${i}`,
      "--driver",
      "remote",
      "--platform",
      c.platform,
      ...(c.local
        ? [`unix://${c.local}`]
        : ["--driver-opt", `cacert=${c.ca},cert=${c.cert},key=${c.key},servername=${c.serverName}`, c.endpoint]),
    ]);
    const build = [
      client.path,
      "build",
      "--builder",
      name,
      "--progress",
      a.progress,
      ...(a.platforms.length ? ["--platform", a.platforms.join(",")] : []),
      ...a.tags.flatMap((t) => ["-t", t]),
      ...(a.file ? ["-f", a.file] : []),
      ...a.buildArgs.flatMap((b) => ["--build-arg", b]),
      ...(a.target ? ["--target", a.target] : []),
      ...(a.push ? ["--push"] : []),
      ...(a.load ? ["--load"] : []),
      ...a.outputs.flatMap((o) => ["--output", o]),
      ...(a.noCache ? ["--no-cache"] : []),
      a.context,
    ];
    // Its own config dir: nothing is left in the user's buildx configuration.
    return {
      setup,
      build,
      teardown: [[client.path, "rm", "--force", name]],
      env: { BUILDX_CONFIG: join(s.dir, "buildx") },
    };
  }
  if (s.connections.length !== 1)
    throw new UsageError("buildctl builds one platform at a time; install docker-buildx for multi-platform builds");
  const c = s.connections[0]!;
  if (a.load && a.outputs.length)
    throw new UsageError("with buildctl, --load is the build's only output (docker-buildx can combine them)");
  const name = a.tags.join(",") || "slipway-build";
  const outputs = [
    ...a.outputs,
    ...(a.push || (a.tags.length && !a.load) ? [`type=image,name=${name}${a.push ? ",push=true" : ""}`] : []),
    // No dest: buildctl writes the tarball to its stdout, which is piped into `docker load`.
    ...(a.load ? [`type=docker,name=${name}`] : []),
  ];
  const build = [
    client.path,
    "--addr",
    c.endpoint,
    "--tlscacert",
    c.ca,
    "--tlscert",
    c.cert,
    "--tlskey",
    c.key,
    "--tlsservername",
    c.serverName,
    "build",
    "--frontend",
    "dockerfile.v0",
    "--local",
    `context=${a.context}`,
    "--local",
    `dockerfile=${a.file ? dirname(resolve(a.context, a.file)) : a.context}`,
    ...(a.file ? ["--opt", `filename=${a.file.split("/").pop()}`] : []),
    "--opt",
    `platform=${c.platform}`,
    ...a.buildArgs.flatMap((b) => ["--opt", `build-arg:${b}`]),
    ...(a.target ? ["--opt", `target=${a.target}`] : []),
    ...(a.noCache ? ["--no-cache"] : []),
    "--progress",
    a.progress,
    ...outputs.flatMap((o) => ["--output", o]),
  ];
  return { setup: [], build, teardown: [], env: {}, ...(a.load ? { loadInto: ["docker", "load"] } : {}) };
}

/**
 * TLS options that verify the build endpoint as `serverName`, as Go's client does: a DNS name
 * against the certificate's DNS names (and sent as SNI), an IP address against its IP addresses
 * (TLS forbids an IP address as SNI, so none is sent).
 */
export function endpointIdentity(
  serverName: string,
): Pick<tls.ConnectionOptions, "servername" | "checkServerIdentity"> {
  if (!net.isIP(serverName)) return { servername: serverName };
  return { checkServerIdentity: (_host, cert) => tls.checkServerIdentity(serverName, cert) };
}

/**
 * A server that forwards each connection to the build endpoint over mutual TLS with the build's
 * certificate. A connection that fails is closed and reported to `onError`, never thrown.
 */
function forwardServer(c: Active, onError: (e: Error) => void): net.Server {
  const endpoint = new URL(c.endpoint.replace(/^tcp:/, "http:"));
  const [ca, cert, key] = [readFileSync(c.ca, "utf8"), readFileSync(c.cert, "utf8"), readFileSync(c.key, "utf8")];
  const identity = endpointIdentity(c.serverName);
  return net.createServer((local) => {
    let remote: tls.TLSSocket;
    try {
      remote = tls.connect({
        host: endpoint.hostname.replace(/^\[|\]$/g, ""),
        port: Number(endpoint.port),
        ca,
        cert,
        key,
        ...identity,
        ALPNProtocols: ["h2"],
      });
    } catch (e) {
      local.destroy();
      return onError(e as Error);
    }
    remote.once("error", (e) => onError(e));
    local.pipe(remote).pipe(local);
    const end = () => {
      local.destroy();
      remote.destroy();
    };
    local.on("error", end);
    remote.on("error", end);
    local.on("close", end);
    remote.on("close", end);
  });
}

/**
 * A local TCP listener that forwards each connection to the build endpoint over mutual TLS with
 * the build's certificate: any BuildKit client can then use BUILDKIT_HOST=tcp://127.0.0.1:PORT.
 */
export async function forwardListener(
  c: Active,
  onError: (e: Error) => void = () => {},
): Promise<{ port: number; close(): void }> {
  const server = forwardServer(c, onError);
  await new Promise<void>((res, rej) => server.once("error", rej).listen(0, "127.0.0.1", () => res()));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/**
 * The same on a unix socket in the connection's private directory (0700), which becomes its
 * `local` endpoint. buildx refuses two nodes with one endpoint, and every platform's builder is
 * reached through the same build endpoint (the certificate picks the builder), so a
 * multi-platform buildx build gets one such socket per platform.
 */
export async function forwardSocket(c: Active, onError: (e: Error) => void = () => {}): Promise<{ close(): void }> {
  const path = join(c.dir, `${c.platform.replaceAll("/", "-")}.sock`);
  const server = forwardServer(c, onError);
  await new Promise<void>((res, rej) => server.once("error", rej).listen(path, () => res()));
  c.local = path;
  return {
    close: () => {
      server.close();
      delete c.local;
    },
  };
}
