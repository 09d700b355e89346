/**
 * @module api/connect/routes
 * The depot CLI's build API served as Connect RPC: every method of
 * wire/depot.ts METHODS, its request decoded and validated by the codec, its work done by the
 * builds, projects, organizations and device-login services, its errors as Connect error JSON.
 * Any other `/depot.` method answers `unimplemented` with what to use instead (./unoffered.ts).
 */
import { Elysia } from "elysia";
import type { Actor } from "../../auth/actor.ts";
import { authorize, projectScope } from "../../auth/policy.ts";
import { statusToReport, type BuildsService } from "../../builds/index.ts";
import { InvalidInputError, NotFoundError } from "../../errors.ts";
import type { Logger } from "../../log/logger.ts";
import type { Organization } from "../../orgs/service.ts";
import { PROJECT_NAME_PATTERN, PROJECT_NAME_RULE, SETTING_LIMITS, type Project, type ProjectSettings } from "../../projects/service.ts";
import { BuilderPlatform, BuildStatus, METHODS, PLATFORM_OF_BUILDER, type MethodName, type RpcMethod } from "../../wire/depot.ts";
import { fromTimestamp, toTimestamp, type Msg } from "../../wire/proto.ts";
import { readBodyLimited } from "../../http/body.ts";
import { holdOpen, requestInfo } from "../context.ts";
import type { IdentityContext } from "../identity.ts";
import type { RegistryService } from "../../registry/index.ts";
import { codecOf, ConnectError, connectErrorOf, decodeMessage, encodeMessage, endStreamFrame, frame, readFrames, unaryError, type Codec } from "./protocol.ts";
import { unofferedResponse } from "./unoffered.ts";

export interface ConnectDeps {
  ctx: IdentityContext;
  builds: BuildsService;
  /** Stops a project's builders and erases their caches (ResetProjectCache). */
  resetCache(projectId: string, actor: Actor): Promise<void>;
  log: Logger;
  /** The platform a build gets when the client does not say (the engine's own). */
  defaultPlatform: string;
  /** Largest unary request body (a larger one answers resource_exhausted, unread past this). */
  maxUnaryBytes: number;
  /** Largest message of a client stream (ReportStatusStream's status batches). */
  maxMessageBytes: number;
  /** The appliance's registry (--save, depot pull, pull tokens, --load through it). */
  registry?: Pick<RegistryService, "available" | "pushable" | "validateSave" | "saveTargets" | "pullToken" | "reference" | "status">;
  /** Whether builders have BuildKit's `image` exporter (builders/exporters): --load through the registry needs it. */
  imageExport: () => boolean;
}

type Handler = (input: Msg, call: { request: Request; actor: () => Promise<Actor> }) => Promise<Msg> | Msg;

const STATUS_OF: Record<string, number> = { created: BuildStatus.RUNNING, running: BuildStatus.RUNNING, finished: BuildStatus.FINISHED, failed: BuildStatus.FAILED, canceled: BuildStatus.CANCELED, expired: BuildStatus.FAILED };

const nonEmpty = (v: unknown, field: string): string => {
  if (typeof v !== "string" || v.length === 0) throw new InvalidInputError(`${field} is required`, [{ pointer: `/${field}`, detail: "must not be empty" }]);
  if (v.length > 200) throw new InvalidInputError(`${field} is too long`, [{ pointer: `/${field}`, detail: "at most 200 characters" }]);
  return v;
};

const GIB = 1024n ** 3n;
const NAME = new RegExp(PROJECT_NAME_PATTERN);

const projectName = (v: unknown): string => {
  if (typeof v !== "string" || !NAME.test(v)) throw new InvalidInputError(`the project name ${JSON.stringify(v)} is not allowed: ${PROJECT_NAME_RULE}`, [{ pointer: "/name", detail: PROJECT_NAME_RULE }]);
  return v;
};

const inRange = (key: keyof ProjectSettings, v: number, pointer: string, what: string): number => {
  const { min, max } = SETTING_LIMITS[key];
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidInputError(`${what} must be ${min} to ${max}; got ${v} (Slipway has no unlimited setting)`, [{ pointer, detail: `${min} to ${max}` }]);
  return v;
};

/** A depot cache policy as the project's cache settings, with the REST API's ranges. Depot's 0
 * ("no limit") has no counterpart: every Slipway cache volume has a size and a retention. */
function cacheSettings(policy: Msg): Pick<ProjectSettings, "cache_size_gb" | "cache_keep_days"> {
  const bytes = policy.keepBytes as bigint;
  let gb = policy.keepGb as number;
  if (bytes !== 0n) {
    if (bytes < 0n || bytes % GIB !== 0n) throw new InvalidInputError(`the cache size must be a whole number of GB; got ${bytes} bytes`, [{ pointer: "/cachePolicy/keepBytes", detail: "a multiple of 1 GiB" }]);
    gb = Number(bytes / GIB); // below 2^33 for any int64: exact
  }
  return {
    cache_size_gb: inRange("cache_size_gb", gb, "/cachePolicy/keepBytes", "the cache size per platform (--cache-storage-policy, GB)"),
    cache_keep_days: inRange("cache_keep_days", policy.keepDays as number, "/cachePolicy/keepDays", "the cache retention (--cache-policy-keep-days)"),
  };
}

/** A project as depot.core.v1.Project. Slipway has no regions: region_id stays empty. */
const coreProject = (p: Project): Msg => ({
  projectId: p.id,
  organizationId: p.org_id,
  name: p.name,
  regionId: "",
  createdAt: toTimestamp(new Date(p.created_at)),
  cachePolicy: { keepBytes: BigInt(p.cache_size_gb) * GIB, keepDays: p.cache_keep_days, keepGb: p.cache_size_gb },
});

export function connectRoutes(deps: ConnectDeps) {
  const { ctx, builds, log } = deps;
  const platformOf = (p: number) => (p === BuilderPlatform.UNSPECIFIED ? deps.defaultPlatform : PLATFORM_OF_BUILDER[p]);

  /** The project, if `a` may do `action` on it; a foreign project answers exactly like a missing one. */
  const projectFor = (a: Actor, id: unknown, action: "project:read" | "project:update" | "project:delete"): Project => {
    const p = ctx.projects.get(nonEmpty(id, "projectId"));
    authorize(a, action, { orgId: p.org_id, projectId: p.id });
    return p;
  };

  /** CreateProject's organization: the one named (id or slug), else the only one the credential sees. */
  const orgForCreate = (a: Actor, named: unknown): Organization => {
    if (typeof named === "string" && named) return ctx.orgs.get(nonEmpty(named, "organizationId"));
    const visible = ctx.orgs.listFor(a);
    if (visible.length === 1) return visible[0]!;
    const detail = "name it with --organization ORG_ID (or `depot org switch ORG_ID`)";
    if (visible.length === 0) throw new InvalidInputError(`name the organization: this credential belongs to none (projects are created with an organization token or an owner's user token); ${detail}`, [{ pointer: "/organizationId", detail: "required" }]);
    throw new InvalidInputError(`name the organization, you can see ${visible.length} (${visible.map((o) => o.id).join(", ")}): ${detail}`, [{ pointer: "/organizationId", detail: "required" }]);
  };

  const handlers: Record<Exclude<MethodName, "reportStatusStream" | "finishLogin">, Handler> = {
    async createBuild(input, { actor }) {
      const a = await actor();
      const scope = projectScope(a); // a credential bound to one project implies it
      const projectId = typeof input.projectId === "string" && input.projectId ? input.projectId : scope.length === 1 ? scope[0]! : null;
      if (!projectId) throw new InvalidInputError("project_id is required (--project, DEPOT_PROJECT_ID or depot.json)", [{ pointer: "/projectId", detail: "required" }]);
      const engine = input.requiredEngine as Msg | undefined;
      if (engine?.dagger) throw new ConnectError("unimplemented", "Slipway builders run BuildKit; Dagger engines are not available");
      const options = (input.options as Msg[]).map((o) => ({
        command: o.command as number,
        tags: o.tags as string[],
        outputs: (o.outputs as Msg[]).map((x) => ({ kind: x.kind as string, attributes: x.attributes as Record<string, string> })),
        push: o.push as boolean,
        load: o.load as boolean,
        save: o.save as boolean,
        ...(o.targetName ? { target: o.targetName as string } : {}),
      }));
      const raw = input.options as Msg[];
      const save = raw.some((o) => o.save);
      const saveTags = [...new Set(raw.flatMap((o) => (o.saveTags as string[]) ?? []))];
      // --load goes through the registry when builders can push to it: the CLI then saves the
      // build and pulls it into the client's Docker (GetPullInfo).
      const loadUsingRegistry = Boolean(deps.registry?.pushable()) && deps.imageExport();
      const viaRegistry = save || (loadUsingRegistry && raw.some((o) => o.load));
      if (save) {
        if (a.kind === "anonymous") authorize(a, "build:run"); // 401 before the server's set-up is told
        if (!deps.registry) throw new ConnectError("failed_precondition", "--save needs the appliance's registry, which this server does not run");
        deps.registry.validateSave(saveTags); // before the build exists: a refusal leaves nothing made (builds.create refuses builders without the image exporter)
      }
      const { build, token } = builds.create(a, nonEmpty(projectId, "projectId"), options); // id or ORG/NAME
      const targets = viaRegistry ? deps.registry!.saveTargets({ id: build.id, projectId: build.project_id }, token, saveTags) : null;
      return {
        buildId: build.id,
        buildToken: token,
        registry: { canUseLocalRegistry: false, proxyImage: "", loadUsingRegistry },
        buildUrl: builds.buildUrl(build.id),
        projectId: build.project_id,
        additionalCredentials: targets?.credentials ?? [],
        additionalTags: (targets?.tags ?? []).map((tag) => ({ tag, push: true })),
      };
    },
    async getBuild(input, { actor }) {
      const b = builds.read(await actor(), nonEmpty(input.buildId, "buildId"));
      return { buildId: b.id, projectId: b.project_id, buildUrl: builds.buildUrl(b.id) };
    },
    async finishBuild(input, { actor }) {
      const result = input.success ? { kind: "success" as const } : input.error ? { kind: "error" as const, error: String((input.error as Msg).error ?? "") } : input.canceled ? { kind: "canceled" as const } : null;
      if (!result) throw new InvalidInputError("one of success, error or canceled is required", [{ pointer: "/result", detail: "required" }]);
      builds.finish(await actor(), nonEmpty(input.buildId, "buildId"), result);
      return {};
    },
    async getBuildKitConnection(input, { actor }) {
      const platform = platformOf(input.platform as number);
      if (!platform) throw new InvalidInputError(`unknown platform ${input.platform}`, [{ pointer: "/platform", detail: "BUILDER_PLATFORM_AMD64 or BUILDER_PLATFORM_ARM64" }]);
      const c = await builds.connection(await actor(), nonEmpty(input.buildId, "buildId"), platform);
      if (c.kind === "pending") return { pending: { waitMs: c.waitMs } };
      return { active: { endpoint: c.endpoint, serverName: c.serverName, cert: { cert: c.certPem, key: c.keyPem }, caCert: { cert: c.caPem, key: "" }, identity: {} } };
    },
    async reportBuildHealth(input, { actor }) {
      const { cancelsAt } = builds.health(await actor(), nonEmpty(input.buildId, "buildId"));
      return cancelsAt ? { cancelsAt: toTimestamp(cancelsAt) } : {};
    },
    async reportTimings(input, { actor }) {
      // Only steps with a stable digest can be matched to BuildKit's; the rest are not kept.
      const steps = (input.buildSteps as Msg[]).filter((s) => s.stableDigest).map((s) => {
        const started = fromTimestamp(s.startTime as Msg | undefined);
        return {
          digest: s.stableDigest as string,
          name: s.name as string,
          cached: s.cached as boolean,
          started,
          completed: started ? new Date(started.getTime() + Number(s.durationMs)) : null,
          error: (s.error as string | undefined) ?? "",
        };
      });
      builds.report(await actor(), nonEmpty(input.buildId, "buildId"), { steps, logs: [] });
      return {};
    },
    async reportStatus(input, { actor }) {
      builds.report(await actor(), nonEmpty(input.buildId, "buildId"), statusToReport(input.statuses as Msg[]));
      return {};
    },
    async reportBuildContext(input, { actor }) {
      builds.read(await actor(), nonEmpty(input.buildId, "buildId")); // accepted, not kept
      return {};
    },
    async listBuilds(input, { actor }) {
      const page = builds.list(await actor(), nonEmpty(input.projectId, "projectId"), input.pageSize as number, (input.pageToken as string) || null);
      return {
        builds: page.builds.map((b) => ({ id: b.id, status: STATUS_OF[b.status], createdAt: toTimestamp(new Date(b.created_at)), ...(b.finished_at ? { finishedAt: toTimestamp(new Date(b.finished_at)) } : {}) })),
        nextPageToken: page.next ?? "",
      };
    },
    async getPullInfo(input, { actor }) {
      const a = await actor();
      const b = builds.read(a, nonEmpty(input.buildId, "buildId"));
      const p = ctx.projects.get(b.project_id);
      authorize(a, "registry:pull", { orgId: p.org_id, projectId: p.id });
      if (!deps.registry?.available()) throw new ConnectError("failed_precondition", `the appliance's registry is not available (${deps.registry?.status().detail ?? "not configured"}): build with --push, --output or --load instead`);
      const { token, expiresAt } = await deps.registry.pullToken({ orgId: p.org_id, projectId: p.id });
      ctx.audit.record({ orgId: p.org_id, actor: a, action: "registry.pull_token", target: p.id, details: { build: b.id, expires_at: expiresAt.toISOString() } });
      return { reference: deps.registry.reference(p.id, b.id), username: "x-token", password: token, options: [], saveForLoad: false };
    },
    async getPullToken(input, { actor }) {
      const a = await actor();
      const buildId = typeof input.buildId === "string" && input.buildId ? input.buildId : null;
      const scope = projectScope(a);
      const projectId = buildId ? builds.read(a, buildId).project_id : typeof input.projectId === "string" && input.projectId ? input.projectId : scope.length === 1 ? scope[0]! : null;
      if (!projectId) throw new InvalidInputError("project_id or build_id is required (--project, DEPOT_PROJECT_ID or depot.json)", [{ pointer: "/projectId", detail: "required" }]);
      const p = ctx.projects.get(nonEmpty(projectId, "projectId"));
      authorize(a, "registry:pull", { orgId: p.org_id, projectId: p.id });
      if (!deps.registry?.available()) throw new ConnectError("failed_precondition", `the appliance's registry is not available (${deps.registry?.status().detail ?? "not configured"})`);
      const { token, expiresAt } = await deps.registry.pullToken({ orgId: p.org_id, projectId: p.id });
      ctx.audit.record({ orgId: p.org_id, actor: a, action: "registry.pull_token", target: p.id, details: { expires_at: expiresAt.toISOString() } });
      return { token };
    },
    async startPush() {
      throw new ConnectError("unimplemented", "depot push copies a saved build's layers from Depot's own blob service, which a Slipway appliance is not: pull it with `depot pull <build id> -t IMAGE` and `docker push IMAGE`, or build with --push");
    },
    async finishPush() {
      throw new ConnectError("unimplemented", "depot push is not available on a Slipway appliance (see StartPush)");
    },
    async listProjects(_input, { actor }) {
      const a = await actor();
      authorize(a, "visible:list");
      const orgNames = new Map(ctx.orgs.listFor(a).map((o) => [o.id, o.name]));
      return {
        projects: ctx.projects.visibleTo(a).map((p) => ({ id: p.id, name: p.name, orgId: p.org_id, orgName: orgNames.get(p.org_id) ?? safeOrgName(p.org_id) })),
      };
    },
    async resetProjectCache(input, { actor }) {
      const a = await actor();
      const p = ctx.projects.get(nonEmpty(input.projectId, "projectId"));
      authorize(a, "cache:reset", { orgId: p.org_id, projectId: p.id });
      await deps.resetCache(p.id, a);
      return { name: p.name, orgName: safeOrgName(p.org_id) };
    },
    async startLogin(_input, { request }) {
      // Rate-limited per address by the service (one limit with the REST start).
      const started = ctx.deviceLogins.start({ clientName: "depot CLI", ip: ctx.ip(request), userAgent: request.headers.get("user-agent") }, ctx.publicUrl);
      // The depot CLI prints only this link, so the code rides in its fragment for the person to
      // read and type; the page never fills it in (and a fragment never reaches a server's logs).
      return { id: started.device_code, approveUrl: `${started.verification_uri}#${started.user_code}` };
    },
    async listOrganizations(_input, { actor }) {
      const a = await actor();
      authorize(a, "visible:list");
      return { organizations: ctx.orgs.listFor(a).map((o) => ({ orgId: o.id, name: o.name, createdAt: toTimestamp(new Date(o.created_at)) })) };
    },
    async coreListProjects(_input, { actor }) {
      const a = await actor();
      authorize(a, "visible:list");
      return { projects: ctx.projects.visibleTo(a).map(coreProject) };
    },
    async getProject(input, { actor }) {
      return { project: coreProject(projectFor(await actor(), input.projectId, "project:read")) };
    },
    async createProject(input, { actor }) {
      const a = await actor();
      const org = orgForCreate(a, input.organizationId);
      authorize(a, "project:create", { orgId: org.id });
      // region_id is not kept: the CLI always sends one (us-east-1 unless --region), and builds run here.
      const settings = input.cachePolicy ? cacheSettings(input.cachePolicy as Msg) : {};
      return { project: coreProject(ctx.projects.create(org.id, { name: projectName(input.name), ...settings }, a)) };
    },
    async updateProject(input, { actor }) {
      const a = await actor();
      const p = projectFor(a, input.projectId, "project:update");
      if (input.regionId) throw new InvalidInputError("Slipway has no regions: a project's builds and caches stay on this appliance (leave out --region)", [{ pointer: "/regionId", detail: "not offered" }]);
      const patch = { ...(input.name !== undefined ? { name: projectName(input.name) } : {}), ...(input.cachePolicy ? cacheSettings(input.cachePolicy as Msg) : {}) };
      return { project: coreProject(ctx.projects.update(p.id, patch, a)) };
    },
    async deleteProject(input, { actor }) {
      const a = await actor();
      await ctx.projects.delete(projectFor(a, input.projectId, "project:delete").id, a);
      return {};
    },
  };

  function safeOrgName(orgId: string): string {
    try {
      return ctx.orgs.get(orgId).name;
    } catch (e) {
      if (e instanceof NotFoundError) return "";
      throw e;
    }
  }

  const fail = (request: Request, method: RpcMethod, e: unknown) => {
    const info = requestInfo(request);
    const { code, message, unexpected } = connectErrorOf(e);
    if (unexpected) log.error("rpc failed", { request_id: info.id, path: method.path, error: e as Error, stack: (e as Error)?.stack });
    return { code, message, id: info.id };
  };

  async function unary(method: RpcMethod, name: keyof typeof handlers, request: Request): Promise<Response> {
    const codec = codecOf(request.headers.get("content-type"), false);
    if (!codec) return unaryError("invalid_argument", "Content-Type must be application/proto or application/json", requestInfo(request).id);
    try {
      // Authenticate before the body is read or decoded: an anonymous caller costs no memory.
      // StartLogin is how an anonymous CLI gets a credential; it has only the size limits.
      const actor = name === "startLogin" ? null : await ctx.actorOf(request);
      const input = decodeMessage(method.input, codec, await readBodyLimited(request, deps.maxUnaryBytes));
      const output = await handlers[name](input, { request, actor: async () => actor ?? ctx.actorOf(request) });
      return new Response(encodeMessage(method.output, codec, output), { status: 200, headers: { "content-type": codec === "proto" ? "application/proto" : "application/json" } });
    } catch (e) {
      const { code, message, id } = fail(request, method, e);
      return unaryError(code, message, id);
    }
  }

  const streamHeaders = (codec: Codec) => ({ "content-type": codec === "proto" ? "application/connect+proto" : "application/connect+json" });

  /** ReportStatusStream: every message is a status batch; the reply comes when the client ends. */
  async function statusStream(request: Request): Promise<Response> {
    const method = METHODS.reportStatusStream;
    const codec = codecOf(request.headers.get("content-type"), true);
    if (!codec) return unaryError("invalid_argument", "Content-Type must be application/connect+proto or application/connect+json", requestInfo(request).id);
    let error: { code: ReturnType<typeof connectErrorOf>["code"]; message: string } | null = null;
    let frames = 0;
    try {
      const actor = await ctx.actorOf(request);
      holdOpen(request); // a long step may send nothing for minutes
      for await (const payload of readFrames(request.body, deps.maxMessageBytes)) {
        const msg = decodeMessage(method.input, codec, payload);
        builds.report(actor, nonEmpty(msg.buildId, "buildId"), statusToReport(msg.statuses as Msg[]));
        frames++;
      }
    } catch (e) {
      // The client went away (it ends the stream by closing when the build is done): what arrived is kept.
      if ((e as Error)?.name === "AbortError") {
        log.debug("status stream closed by the client", { frames });
        return new Response(endStreamFrame(null), { status: 200, headers: streamHeaders(codec) });
      }
      const f = fail(request, method, e);
      error = { code: f.code, message: f.message };
    }
    log.debug("status stream ended", { frames, error: error?.message });
    const body = error ? endStreamFrame(error) : concat(frame(0, encodeMessage(method.output, codec, {})), endStreamFrame(null));
    return new Response(body, { status: 200, headers: streamHeaders(codec) });
  }

  /** FinishLogin: waits (server stream) until the device login is approved, then sends the token. */
  async function finishLogin(request: Request): Promise<Response> {
    const method = METHODS.finishLogin;
    const codec = codecOf(request.headers.get("content-type"), true);
    if (!codec) return unaryError("invalid_argument", "Content-Type must be application/connect+proto or application/connect+json", requestInfo(request).id);
    let id: string;
    try {
      // A server stream's request is one message: the first is decoded, nothing after it is read.
      let first: Msg | null = null;
      for await (const payload of readFrames(request.body, 64 * 1024)) {
        first = decodeMessage(method.input, codec, payload);
        break;
      }
      id = nonEmpty(first?.id, "id");
    } catch (e) {
      const f = fail(request, method, e);
      return new Response(endStreamFrame({ code: f.code, message: f.message }), { status: 200, headers: streamHeaders(codec) });
    }
    holdOpen(request); // until a person approves, which takes longer than the idle timeout
    // The client may give up (Ctrl-C on `depot login`): its stream is then canceled, and closing
    // or writing to it would throw. The wait ends quietly at the next poll.
    let gone = false;
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        const deadline = Date.now() + 10 * 60_000;
        const finish = (...chunks: Uint8Array[]) => {
          if (gone) return;
          for (const c of chunks) controller.enqueue(c);
          controller.close();
        };
        try {
          for (;;) {
            if (gone || request.signal.aborted) {
              log.debug("login stream closed by the client");
              return;
            }
            const r = ctx.deviceLogins.poll(id);
            if (r.status === "approved") return finish(frame(0, encodeMessage(method.output, codec, { token: r.token })), endStreamFrame(null));
            if (Date.now() > deadline) throw new ConnectError("deadline_exceeded", "the login was not approved in time");
            await Bun.sleep(2500); // the device-login poll interval
          }
        } catch (e) {
          const f = fail(request, method, e);
          finish(endStreamFrame({ code: f.code, message: f.message }));
        }
      },
      cancel() {
        gone = true;
      },
    });
    return new Response(stream, { status: 200, headers: streamHeaders(codec) });
  }

  let app = new Elysia({ name: "routes/connect" });
  for (const [name, method] of Object.entries(METHODS) as [MethodName, RpcMethod][]) {
    const handle =
      name === "reportStatusStream" ? statusStream : name === "finishLogin" ? finishLogin : (request: Request) => unary(method, name as keyof typeof handlers, request);
    app = app.post(method.path, ({ request }) => handle(request), { detail: { hide: true } }) as unknown as typeof app;
  }
  // Every other depot method (the router prefers any exact route, wherever it is declared).
  return app.post("/depot.*", ({ request }) => {
    log.debug("depot RPC not offered", { request_id: requestInfo(request).id, path: new URL(request.url).pathname });
    return unofferedResponse(request);
  }, { detail: { hide: true } });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
