/**
 * @module registry/service
 * The appliance's registry: a supervised docker-registry (./process.ts) behind serve's own HTTPS
 * listener, with Slipway as its token service.
 *
 * - `/v2/…` is reverse-proxied to the registry's unix socket, bodies streamed both ways (only a
 *   manifest PUT, at most 4 MiB, is read whole: it is how pushes are learned). The registry's
 *   `WWW-Authenticate` realm is rewritten to the host the request came in on, except for the
 *   builders' own name for the appliance (see builderHost): BuildKit fetches tokens through the
 *   client's session, so the realm a builder is given must be one the client reaches.
 * - `/registry/token` is the realm: HTTP Basic (any user name, e.g. `x-token`; the password a
 *   Slipway credential or a pull token) or the OAuth2 password grant (POST), answering a JWT that
 *   grants, per requested `repository:<name>:<actions>` scope, only what the policy allows. A
 *   repository is a project: its name is the project id. A foreign project's repository is granted
 *   nothing, exactly like one that does not exist (the registry then answers 401 to both).
 * - Pull tokens (`slw_r_…`) are JWTs of the same key: read-only, one project, valid 1 h.
 * - Saved images (project, tag, digest, build, bytes, pushed at) are recorded from successful
 *   manifest PUTs; retention per project deletes expired manifests through the registry API and
 *   `garbage-collect` (registry stopped meanwhile) frees their blobs.
 */
import type { BuildsService } from "../builds/index.ts";
import type { ProjectsService } from "../projects/service.ts";
import type { Database } from "bun:sqlite";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { actorLabel, type Actor } from "../auth/actor.ts";
import { can } from "../auth/policy.ts";
import { InvalidInputError, NotFoundError, PreconditionError } from "../errors.ts";
import type { HealthCheck } from "../health/registry.ts";
import type { Logger } from "../log/logger.ts";
import type { Sealer } from "../secrets/index.ts";
import { readBodyLimited } from "../http/body.ts";
import { REGISTRY_ISSUER, REGISTRY_SERVICE, registryProcessFactory, type RegistryProcess } from "./process.ts";
import { loadSigningKey, type SigningKey } from "./signing.ts";

export const PULL_TOKEN_PREFIX = "slw_r_";
export const TOKEN_PATH = "/registry/token";
const PULL_TOKEN_SECONDS = 3600;
const ACCESS_TOKEN_SECONDS = 900;
/** An OAuth2 token request is a short form (grant, user, password, a few scopes). */
const TOKEN_FORM_MAX_BYTES = 64 * 1024;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DAY_MS = 86_400_000;

export interface RegistrySettings {
  enabled: boolean;
  binary: string;
  retention_days: number;
  gc_interval_hours: number;
}

export interface RegistryServiceDeps {
  db: Database;
  /** Repositories are projects: a repository name is a project id. */
  projects: Pick<ProjectsService, "find">;
  /** A pushed tag naming a build of the project links the image to that build. */
  builds: Pick<BuildsService, "find">;
  sealer: Pick<Sealer, "seal" | "unseal">;
  log: Logger;
  dataDir: string;
  settings: RegistrySettings;
  /** `host:port` of the appliance as clients name it (from the public URL). */
  publicHost: string;
  /** `host:port` builders push to (resolved to their network's gateway), see builderRegistryHost. */
  builderHost: string;
  /** Authenticates a Slipway credential presented as a Bearer token. */
  actorOf(request: Request): Promise<Actor>;
  /** Why builders cannot reach serve's listener (it listens on loopback only), or null. */
  unreachableByBuilders?: string | null;
}

export interface SavedImage {
  digest: string;
  tags: string[];
  build_id: string | null;
  media_type: string;
  bytes: number;
  pushed_at: string;
  age_seconds: number;
}

interface ImageRow {
  project_id: string;
  tag: string;
  digest: string;
  media_type: string;
  build_id: string | null;
  bytes: number;
  pushed_at: string;
}

interface Access {
  type: "repository";
  name: string;
  actions: string[];
}

/**
 * The name builders use for the appliance's registry. The public host when builders can reach it
 * as is or through an /etc/hosts entry (a DNS name, or an address of this machine); for a loopback
 * public host (`localhost`, 127.0.0.1, ::1), which inside a builder would be the builder itself,
 * `registry.slipway.internal` (also put into serve's certificate).
 */
export const BUILDER_ALIAS = "registry.slipway.internal";
export function builderRegistryHost(publicHostname: string, port: number): { host: string; alias: boolean } {
  const h = publicHostname.replace(/^\[|\]$/g, "").toLowerCase();
  const loopback = h === "localhost" || h.endsWith(".localhost") || /^127\./.test(h) || h === "::1";
  if (loopback) return { host: `${BUILDER_ALIAS}:${port}`, alias: true };
  return { host: `${h.includes(":") ? `[${h}]` : h}:${port}`, alias: false };
}

const regError = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ errors: [{ code, message }] }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

function dirBytes(dir: string): number {
  let total = 0;
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

// Over 120 lines as a whole: a service factory, whose methods (each short) are the units; the
// closure only shares prepared statements and the registry process.
export function registryServiceFactory(deps: RegistryServiceDeps) {
  const { db, log, settings } = deps;
  let key: SigningKey | null = null;
  let proc: RegistryProcess | null = null;
  let gcTimer: ReturnType<typeof setInterval> | null = null;
  let collecting: Promise<CollectResult> | null = null;
  let startError: string | null = null;

  const now = () => Date.now();
  const project = (id: string) => deps.projects.find(id);
  const retentionDays = (projectId: string) =>
    (
      db.query("SELECT retention_days FROM registry_settings WHERE project_id = ?").get(projectId) as {
        retention_days: number;
      } | null
    )?.retention_days ?? settings.retention_days;

  async function sign(sub: string, access: Access[], seconds: number, extra: Record<string, unknown> = {}) {
    const t = Math.floor(now() / 1000);
    return key!.sign({
      iss: REGISTRY_ISSUER,
      sub,
      aud: REGISTRY_SERVICE,
      exp: t + seconds,
      nbf: t - 60,
      iat: t,
      jti: crypto.randomUUID(),
      access,
      ...extra,
    });
  }

  /** A Slipway credential or a pull token, from a token request's password. */
  async function actorFor(password: string): Promise<Actor | null> {
    if (password.startsWith(PULL_TOKEN_PREFIX)) {
      const claims = await key!.verify(password.slice(PULL_TOKEN_PREFIX.length));
      if (claims?.typ !== "pull" || typeof claims.project !== "string" || typeof claims.org !== "string") return null;
      const p = project(claims.project);
      if (!p || p.org_id !== claims.org) return null; // a deleted project's tokens die with it
      return { kind: "pull-token", tokenId: String(claims.jti), orgId: p.org_id, projectId: p.id };
    }
    try {
      const a = await deps.actorOf(
        new Request("https://registry.invalid/", { headers: { authorization: `Bearer ${password}` } }),
      );
      return a.kind === "anonymous" ? null : a;
    } catch {
      return null;
    }
  }

  /** What `actor` gets of each requested scope: the policy's answer, intersected with the ask. */
  function grants(actor: Actor, scopes: string[]): Access[] {
    const out: Access[] = [];
    for (const scope of scopes) {
      const m = /^repository:([^:]+):([a-z*,]+)$/.exec(scope);
      if (!m) continue; // registry:catalog:* and the like: never granted
      const [, name, wanted] = m as unknown as [string, string, string];
      const p = project(name);
      const allowed = new Set<string>();
      if (p) {
        if (can(actor, "registry:pull", { orgId: p.org_id, projectId: p.id })) allowed.add("pull");
        if (can(actor, "registry:push", { orgId: p.org_id, projectId: p.id })) allowed.add("push");
      }
      out.push({ type: "repository", name, actions: wanted.split(",").filter((a) => allowed.has(a)) });
    }
    return out;
  }

  async function tokenEndpoint(request: Request): Promise<Response> {
    const url = new URL(request.url);
    // Any user name (x-token by convention): the password says who it is.
    let password = "";
    let scopes = url.searchParams
      .getAll("scope")
      .flatMap((s) => s.split(" "))
      .filter(Boolean);
    let oauth = false;
    if (request.method === "POST") {
      let body: Uint8Array;
      try {
        body = await readBodyLimited(request, TOKEN_FORM_MAX_BYTES); // before anything is checked: bounded
      } catch {
        return regError(413, "SIZE_INVALID", `the token request is larger than ${TOKEN_FORM_MAX_BYTES} bytes`);
      }
      const form = new URLSearchParams(new TextDecoder().decode(body));
      if (form.get("grant_type") !== "password")
        return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
      oauth = true;
      password = form.get("password") ?? "";
      scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
    } else if (request.method === "GET") {
      const auth = request.headers.get("authorization") ?? "";
      const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(auth);
      if (m) {
        const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
        const i = decoded.indexOf(":");
        if (i >= 0) password = decoded.slice(i + 1);
      }
    } else {
      return regError(405, "UNSUPPORTED", "GET or POST");
    }
    if (scopes.length > 20 || scopes.some((s) => s.length > 300))
      return regError(400, "DENIED", "too many or too long scopes");
    const actor = password ? await actorFor(password) : null;
    if (!actor) {
      return oauth
        ? Response.json(
            { error: "invalid_grant", error_description: "unknown or expired credentials" },
            { status: 401 },
          )
        : regError(
            401,
            "UNAUTHORIZED",
            "credentials are required: user x-token, password a Slipway token or a pull token",
            { "www-authenticate": 'Basic realm="slipway registry"' },
          );
    }
    const access = grants(actor, scopes);
    const token = await sign(actorLabel(actor), access, ACCESS_TOKEN_SECONDS);
    const issued = new Date().toISOString();
    return oauth
      ? Response.json({
          access_token: token,
          expires_in: ACCESS_TOKEN_SECONDS,
          issued_at: issued,
          token_type: "Bearer",
        })
      : Response.json({ token, access_token: token, expires_in: ACCESS_TOKEN_SECONDS, issued_at: issued });
  }

  /** The realm a request gets: its own host, or for the builders' alias the public one. */
  function realmFor(request: Request): string {
    const given = request.headers.get("host") ?? "";
    // The Host header is the caller's to choose: only a plain host[:port] goes into the header.
    const host = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(given) ? given : deps.publicHost;
    // Builders name the registry by builderHost, or by its host with the API's port (the network
    // policy leads them from there to their own listener): either way the client fetches the token.
    const name = (hp: string) => hp.toLowerCase().replace(/:\d+$/, "");
    const h =
      name(host) === name(deps.builderHost) && host.toLowerCase() !== deps.publicHost.toLowerCase()
        ? deps.publicHost
        : host;
    return `https://${h}${TOKEN_PATH}`;
  }

  const internal = (path: string, init: RequestInit = {}) =>
    fetch(`http://registry${path}`, { ...init, unix: proc!.socketPath } as RequestInit);

  async function internalToken(repo: string) {
    return sign("appliance:registry", [{ type: "repository", name: repo, actions: ["pull", "push", "delete"] }], 300);
  }

  const MANIFEST_ACCEPT = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
  ].join(",");

  type Manifest = {
    mediaType?: string;
    config?: { size: number };
    layers?: { size: number }[];
    manifests?: { digest: string; size: number }[];
  };
  const ownBytes = (m: Manifest) => (m.config?.size ?? 0) + (m.layers ?? []).reduce((n, l) => n + (l.size ?? 0), 0);

  /** The bytes an image takes: its config and layers, or for an index those of each manifest. */
  async function imageBytes(repo: string, m: Manifest): Promise<number> {
    if (!m.manifests) return ownBytes(m);
    const auth = { authorization: `Bearer ${await internalToken(repo)}`, accept: MANIFEST_ACCEPT };
    let total = 0;
    for (const child of m.manifests) {
      const r = await internal(`/v2/${repo}/manifests/${child.digest}`, { headers: auth });
      if (r.ok) total += ownBytes((await r.json()) as Manifest) + child.size;
    }
    return total;
  }

  async function recordPush(repo: string, reference: string, digest: string, body: Uint8Array, mediaType: string) {
    const p = project(repo);
    if (!p || !TAG.test(reference)) return; // a push by digest (an index's platform manifest) is no saved image
    let m: Manifest;
    try {
      m = JSON.parse(new TextDecoder().decode(body)) as Manifest;
    } catch {
      return;
    }
    const bytes = await imageBytes(repo, m).catch(() => ownBytes(m));
    // `<build id>` or, for a bake target, `<build id>-<target>`.
    const buildTag = /^(bld_[a-z2-7]{20})(?:-|$)/.exec(reference)?.[1] ?? reference;
    const tagged = deps.builds.find(buildTag);
    const build = tagged?.project_id === p.id ? tagged : null;
    db.query(
      `INSERT INTO registry_images (project_id, tag, digest, media_type, build_id, bytes, pushed_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (project_id, tag) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, build_id = excluded.build_id, bytes = excluded.bytes, pushed_at = excluded.pushed_at`,
    ).run(p.id, reference, digest, m.mediaType ?? mediaType, build?.id ?? null, bytes, new Date(now()).toISOString());
    // A push of a save tag after the build id's tag: the same build.
    if (build)
      db.query("UPDATE registry_images SET build_id = ? WHERE project_id = ? AND digest = ? AND build_id IS NULL").run(
        build.id,
        p.id,
        digest,
      );
    log.info("registry: image pushed", { project: p.id, tag: reference, digest, bytes });
  }

  async function proxy(request: Request): Promise<Response> {
    if (!proc?.ready()) {
      const st = status();
      return regError(
        503,
        "UNAVAILABLE",
        st.ok
          ? "the registry is not running right now (restarting, or collecting garbage); retry shortly"
          : `the registry is not available: ${st.detail}`,
      );
    }
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    for (const h of ["connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization"]) headers.delete(h);
    headers.set("x-forwarded-proto", "https");
    const manifestPut = request.method === "PUT" ? /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname) : null;
    let body: Uint8Array | ReadableStream<Uint8Array> | null = null;
    let manifestBody: Uint8Array | null = null;
    if (manifestPut) {
      try {
        manifestBody = await readBodyLimited(request, MAX_MANIFEST_BYTES); // chunked or not, never more
      } catch {
        return regError(413, "SIZE_INVALID", "manifest too large");
      }
      body = manifestBody;
    } else if (request.body && request.method !== "GET" && request.method !== "HEAD") {
      body = request.body;
    }
    let upstream: Response;
    try {
      upstream = await fetch(`http://registry${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        body,
        unix: proc.socketPath,
        redirect: "manual",
        decompress: false,
        signal: request.signal,
        ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
      } as RequestInit);
    } catch (e) {
      log.warn("registry: proxying failed", {
        method: request.method,
        path: url.pathname,
        error: (e as Error).message,
      });
      return regError(502, "UNAVAILABLE", "the registry did not answer");
    }
    const out = new Headers(upstream.headers);
    const challenge = out.get("www-authenticate");
    if (challenge) out.set("www-authenticate", challenge.replace(/realm="[^"]*"/, `realm="${realmFor(request)}"`));
    if (manifestPut && upstream.status === 201) {
      const [, repo, reference] = manifestPut as unknown as [string, string, string];
      const digest = upstream.headers.get("docker-content-digest") ?? "";
      await recordPush(repo, reference, digest, manifestBody!, request.headers.get("content-type") ?? "").catch((e) =>
        log.warn("registry: recording a push failed", { error: (e as Error).message }),
      );
    }
    return new Response(request.method === "HEAD" ? null : upstream.body, { status: upstream.status, headers: out });
  }

  function status(): { ok: boolean; detail: string } {
    if (!settings.enabled) return { ok: false, detail: "disabled (registry.enabled = false)" };
    if (proc?.unavailable) return { ok: false, detail: proc.unavailable };
    if (startError) return { ok: false, detail: startError };
    if (!proc) return { ok: false, detail: "not started" };
    if (!proc.ready()) return { ok: true, detail: "docker-registry restarting" };
    return {
      ok: true,
      detail: deps.unreachableByBuilders
        ? `docker-registry running; clients pull from ${deps.publicHost}, but builders cannot push: ${deps.unreachableByBuilders}`
        : `docker-registry running; builders push to ${deps.builderHost}, clients pull from ${deps.publicHost}`,
    };
  }

  interface CollectResult {
    deleted: { project_id: string; digest: string; tags: string[] }[];
    bytes_before: number;
    bytes_after: number;
    gc: { ok: boolean; output: string };
  }

  async function deleteManifest(repo: string, digest: string) {
    const auth = { authorization: `Bearer ${await internalToken(repo)}` };
    const r = await internal(`/v2/${repo}/manifests/${digest}`, { headers: { ...auth, accept: MANIFEST_ACCEPT } });
    if (r.ok) {
      const m = (await r.json().catch(() => ({}))) as Manifest;
      for (const child of m.manifests ?? [])
        await internal(`/v2/${repo}/manifests/${child.digest}`, { method: "DELETE", headers: auth });
    }
    const d = await internal(`/v2/${repo}/manifests/${digest}`, { method: "DELETE", headers: auth });
    if (d.status !== 202 && d.status !== 404)
      throw new Error(`deleting ${repo}@${digest}: registry answered ${d.status}`);
  }

  /** Deletes what is past its project's retention, then garbage-collects. */
  async function collectNow(): Promise<CollectResult> {
    if (!proc || !key) throw new PreconditionError(`the registry is not available: ${status().detail}`);
    const before = dirBytes(proc.storageDir);
    const rows = db.query("SELECT * FROM registry_images ORDER BY project_id, digest").all() as ImageRow[];
    const byImage = new Map<string, ImageRow[]>();
    for (const r of rows) {
      const k = `${r.project_id}@${r.digest}`;
      byImage.set(k, [...(byImage.get(k) ?? []), r]);
    }
    const deleted: CollectResult["deleted"] = [];
    for (const group of byImage.values()) {
      const { project_id, digest } = group[0]!;
      const newest = Math.max(...group.map((r) => Date.parse(r.pushed_at)));
      // A deleted project's images go at the next collection.
      if (project(project_id) && newest > now() - retentionDays(project_id) * DAY_MS) continue;
      try {
        await deleteManifest(project_id, digest);
        db.query("DELETE FROM registry_images WHERE project_id = ? AND digest = ?").run(project_id, digest);
        deleted.push({ project_id, digest, tags: group.map((r) => r.tag) });
      } catch (e) {
        log.warn("registry: deleting an expired image failed", {
          project: project_id,
          digest,
          error: (e as Error).message,
        });
      }
    }
    const gc = await proc.garbageCollect();
    const after = dirBytes(proc.storageDir);
    log.info("registry: garbage collected", {
      deleted: deleted.length,
      bytes_before: before,
      bytes_after: after,
      ok: gc.ok,
    });
    if (!gc.ok) log.warn("registry: garbage-collect failed", { output: gc.output });
    return { deleted, bytes_before: before, bytes_after: after, gc };
  }

  return {
    /** Loads the signing key and starts docker-registry; never throws (features then refuse). */
    async start(): Promise<void> {
      if (!settings.enabled) return;
      try {
        key = await loadSigningKey({ db, sealer: deps.sealer });
        proc = registryProcessFactory({
          binary: settings.binary,
          dir: join(deps.dataDir, "registry"),
          signerCertPem: key.certPem,
          log: log.child({ component: "registry" }),
        });
        if (proc.unavailable) {
          log.warn("the registry is unavailable: --save, depot pull and --load through the registry are refused", {
            reason: proc.unavailable,
          });
          return;
        }
        await proc.start();
        log.info("registry started", { builders_push_to: deps.builderHost, clients_pull_from: deps.publicHost });
        if (settings.gc_interval_hours > 0) {
          gcTimer = setInterval(
            () =>
              void this.collect().catch((e) =>
                log.warn("registry: scheduled collection failed", { error: (e as Error).message }),
              ),
            settings.gc_interval_hours * 3600_000,
          );
        }
      } catch (e) {
        startError = (e as Error).message;
        log.warn("the registry did not start", { error: startError });
      }
    },
    async stop() {
      if (gcTimer) clearInterval(gcTimer);
      await collecting?.catch(() => {});
      await proc?.stop();
    },
    status,
    /** Usable for builds: running (or restarting) with a signing key. */
    available: () => status().ok,
    healthCheck: {
      name: "registry:running",
      run: () => {
        const s = status();
        return s.ok
          ? { status: proc!.ready() && !deps.unreachableByBuilders ? "pass" : "warn", output: s.detail }
          : { status: "warn", output: `registry unavailable: ${s.detail}` };
      },
    } satisfies HealthCheck,
    /** serve's fetch handler calls this first: a Response for registry paths, else null. */
    handle(request: Request): Promise<Response> | null {
      const path = new URL(request.url).pathname;
      if (path === TOKEN_PATH)
        return key
          ? tokenEndpoint(request)
          : Promise.resolve(regError(503, "UNAVAILABLE", `the registry is not available: ${status().detail}`));
      if (path === "/v2" || path.startsWith("/v2/")) return proxy(request);
      return null;
    },
    /** Builders can push to it: --load may go through it. */
    pushable(): boolean {
      return this.available() && !deps.unreachableByBuilders;
    },
    /** Throws what saveTargets would, before anything is created. */
    validateSave(saveTags: readonly string[]) {
      if (!this.available())
        throw new PreconditionError(
          `--save needs the appliance's registry, which is not available: ${status().detail}`,
        );
      if (deps.unreachableByBuilders)
        throw new PreconditionError(
          `--save needs builders to push to the appliance's registry, and they cannot: ${deps.unreachableByBuilders}`,
        );
      const bad = saveTags.find((t) => !TAG.test(t));
      if (bad !== undefined)
        throw new InvalidInputError(`save tag ${JSON.stringify(bad)} is not a valid tag`, [
          {
            pointer: "/options/saveTags",
            detail: "letters, digits, _ . -; up to 128 characters, not starting with . or -",
          },
        ]);
    },
    /** CreateBuild's additional tags and credentials: the build id, then each save tag. */
    saveTargets(build: { id: string; projectId: string }, buildToken: string, saveTags: readonly string[]) {
      this.validateSave(saveTags);
      const tags = [...new Set([build.id, ...saveTags])].map((t) => `${deps.builderHost}/${build.projectId}:${t}`);
      return {
        tags,
        credentials: [{ host: deps.builderHost, token: Buffer.from(`x-token:${buildToken}`).toString("base64") }],
      };
    },
    /** A read-only registry credential for one project, valid 1 h. */
    async pullToken(p: { orgId: string; projectId: string }): Promise<{ token: string; expiresAt: Date }> {
      if (!key || !this.available())
        throw new PreconditionError(`the appliance's registry is not available: ${status().detail}`);
      const token = await sign(`project:${p.projectId}`, [], PULL_TOKEN_SECONDS, {
        typ: "pull",
        project: p.projectId,
        org: p.orgId,
      });
      return { token: PULL_TOKEN_PREFIX + token, expiresAt: new Date(now() + PULL_TOKEN_SECONDS * 1000) };
    },
    /** Where a client pulls a build from. */
    reference: (projectId: string, tag: string) => `${deps.publicHost}/${projectId}:${tag}`,
    /** Saved images of a project, newest first, with the retention in force. */
    usage(projectId: string) {
      const rows = db
        .query("SELECT * FROM registry_images WHERE project_id = ? ORDER BY pushed_at DESC")
        .all(projectId) as ImageRow[];
      const images = new Map<string, SavedImage>();
      for (const r of rows) {
        const img = images.get(r.digest);
        if (img) {
          img.tags.push(r.tag);
          img.build_id ??= r.build_id;
          continue;
        }
        images.set(r.digest, {
          digest: r.digest,
          tags: [r.tag],
          build_id: r.build_id,
          media_type: r.media_type,
          bytes: r.bytes,
          pushed_at: r.pushed_at,
          age_seconds: Math.max(0, Math.floor((now() - Date.parse(r.pushed_at)) / 1000)),
        });
      }
      const list = [...images.values()];
      return {
        repository: `${deps.publicHost}/${projectId}`,
        retention_days: retentionDays(projectId),
        images: list,
        total_bytes: list.reduce((n, i) => n + i.bytes, 0),
        available: this.available(),
      };
    },
    setRetention(projectId: string, days: number) {
      if (!project(projectId)) throw new NotFoundError("no such project");
      db.query(
        "INSERT INTO registry_settings (project_id, retention_days, updated_at) VALUES (?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET retention_days = excluded.retention_days, updated_at = excluded.updated_at",
      ).run(projectId, days, new Date(now()).toISOString());
    },
    /** Retention then garbage collection; concurrent calls share one run. */
    collect(): Promise<CollectResult> {
      collecting ??= collectNow().finally(() => (collecting = null));
      return collecting;
    },
  };
}

export type RegistryService = ReturnType<typeof registryServiceFactory>;
