/**
 * @module api/connect/routes
 * The depot-compatible build API (../../../proto/depot) served as Connect RPC by
 * @connectrpc/connect's universal handlers, mounted in Elysia at each method's path: every method
 * of wire/depot.ts METHODS, its request decoded by the generated code, its work done by the
 * builds, projects, organizations and device-login services, its errors as Connect error JSON.
 * Connect-Timeout-Ms and gzip (Content-Encoding, Connect-Content-Encoding) are honoured by the
 * library. The caller is authenticated before the body is read (the library's request gate).
 * Any other `/depot.` method answers `unimplemented` with what to use instead (./unoffered.ts).
 */
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  createConnectRouter,
  createContextKey,
  type HandlerContext,
  type MethodImpl,
  type ServiceImpl,
} from "@connectrpc/connect";
import { Elysia } from "elysia";
import type { Actor } from "../../auth/actor.ts";
import { authorize, projectScope } from "../../auth/policy.ts";
import { statusToReport, type BuildsService } from "../../builds/index.ts";
import { InvalidInputError, NotFoundError } from "../../errors.ts";
import type { Logger } from "../../log/logger.ts";
import type { Organization } from "../../orgs/service.ts";
import {
  PROJECT_NAME_PATTERN,
  PROJECT_NAME_RULE,
  SETTING_LIMITS,
  type Project,
  type ProjectSettings,
} from "../../projects/service.ts";
import type { RegistryService } from "../../registry/index.ts";
import {
  BuilderPlatform,
  BuildService,
  BuildStatus,
  LoginService,
  METHODS,
  OrganizationService,
  PLATFORM_OF_BUILDER,
  ProjectService,
  ProjectsService,
  PushService,
  type RpcMethod,
} from "../../wire/depot.ts";
import type { CachePolicy, ProjectSchema } from "../../wire/gen/depot/core/v1/project_pb.ts";
import { holdOpen, requestInfo } from "../context.ts";
import type { IdentityContext } from "../identity.ts";
import {
  Code,
  compressionGzip,
  connectContentKind,
  connectErrorOf,
  ConnectError,
  REQUEST,
  serveUniversal,
  unaryError,
} from "./protocol.ts";
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
  registry?: Pick<
    RegistryService,
    "available" | "pushable" | "validateSave" | "saveTargets" | "pullToken" | "reference" | "status"
  >;
  /** Whether builders have BuildKit's `image` exporter (builders/exporters): --load through the registry needs it. */
  imageExport: () => boolean;
}

/** The largest FinishLogin request (one device code). */
const LOGIN_REQUEST_BYTES = 64 * 1024;
/** The smallest reply worth gzip (the library's default is 1 KiB). */
export const COMPRESS_MIN_BYTES = 4 * 1024;
/** The caller, resolved by the request gate before the body is read. */
const ACTOR = createContextKey<Actor | null>(null, { description: "the authenticated caller" });
/** Login calls are how an anonymous CLI gets a credential: no identity, only the size limits. */
const ANONYMOUS_METHODS = new Set([METHODS.startLogin.path, METHODS.finishLogin.path]);

const STATUS_OF: Record<string, BuildStatus> = {
  created: BuildStatus.RUNNING,
  running: BuildStatus.RUNNING,
  finished: BuildStatus.FINISHED,
  failed: BuildStatus.FAILED,
  canceled: BuildStatus.CANCELED,
  expired: BuildStatus.FAILED,
};

const nonEmpty = (v: string | undefined, field: string): string => {
  if (typeof v !== "string" || v.length === 0)
    throw new InvalidInputError(`${field} is required`, [{ pointer: `/${field}`, detail: "must not be empty" }]);
  if (v.length > 200)
    throw new InvalidInputError(`${field} is too long`, [{ pointer: `/${field}`, detail: "at most 200 characters" }]);
  return v;
};

const GIB = 1024n ** 3n;
const NAME = new RegExp(PROJECT_NAME_PATTERN);

const projectName = (v: string): string => {
  if (!NAME.test(v))
    throw new InvalidInputError(`the project name ${JSON.stringify(v)} is not allowed: ${PROJECT_NAME_RULE}`, [
      { pointer: "/name", detail: PROJECT_NAME_RULE },
    ]);
  return v;
};

const inRange = (key: keyof ProjectSettings, v: number, pointer: string, what: string): number => {
  const { min, max } = SETTING_LIMITS[key];
  if (!Number.isInteger(v) || v < min || v > max)
    throw new InvalidInputError(`${what} must be ${min} to ${max}; got ${v} (Slipway has no unlimited setting)`, [
      { pointer, detail: `${min} to ${max}` },
    ]);
  return v;
};

/** A depot cache policy as the project's cache settings, with the REST API's ranges. Depot's 0
 * ("no limit") has no counterpart: every Slipway cache volume has a size and a retention. */
function cacheSettings(policy: CachePolicy): Pick<ProjectSettings, "cache_size_gb" | "cache_keep_days"> {
  const bytes = policy.keepBytes;
  let gb = policy.keepGb;
  if (bytes !== 0n) {
    if (bytes < 0n || bytes % GIB !== 0n)
      throw new InvalidInputError(`the cache size must be a whole number of GB; got ${bytes} bytes`, [
        { pointer: "/cachePolicy/keepBytes", detail: "a multiple of 1 GiB" },
      ]);
    gb = Number(bytes / GIB); // below 2^33 for any int64: exact
  }
  return {
    cache_size_gb: inRange(
      "cache_size_gb",
      gb,
      "/cachePolicy/keepBytes",
      "the cache size per platform (--cache-storage-policy, GB)",
    ),
    cache_keep_days: inRange(
      "cache_keep_days",
      policy.keepDays,
      "/cachePolicy/keepDays",
      "the cache retention (--cache-policy-keep-days)",
    ),
  };
}

/** A project as depot.core.v1.Project. Slipway has no regions: region_id stays empty. */
const coreProject = (p: Project): MessageInitShape<typeof ProjectSchema> => ({
  projectId: p.id,
  organizationId: p.org_id,
  name: p.name,
  regionId: "",
  createdAt: timestampFromDate(new Date(p.created_at)),
  cachePolicy: { keepBytes: BigInt(p.cache_size_gb) * GIB, keepDays: p.cache_keep_days, keepGb: p.cache_size_gb },
});

/**
 * How long GetBuildKitConnection is held open while the builder starts before it answers pending
 * (with a short wait_ms, so the client asks again at once). Long enough that most cold starts
 * (2–10 s) end within one or two holds; short enough to stay well inside the server's 10 s idle
 * cut (so the call needs no exemption from it), the admission line's 15 s staleness (a waiting
 * build keeps its place), and any proxy's idle timeout; and a stuck call costs a client little.
 */
const CONNECTION_HOLD_MS = 5_000;
/** A held call answers this long before the client's Connect-Timeout-Ms, so it gets pending, not an error. */
const DEADLINE_MARGIN_MS = 250;

/** Rejects when the call's signal aborts (its Connect-Timeout-Ms passed, or the client left):
 * a handler waiting on a builder does not outlive the deadline the client set. */
function untilAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) =>
    signal.addEventListener("abort", (onAbort = () => reject(signal.reason)), { once: true }),
  );
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener("abort", onAbort));
}

const deadlinePassed = (signal: AbortSignal) =>
  signal.reason instanceof ConnectError && signal.reason.code === Code.DeadlineExceeded;

/** Sleeps `ms`, or less when the call's deadline passes. A client that leaves is noticed at the
 * next wake-up, as before: the device login's poll interval then still holds for its next call. */
const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const onAbort = () => {
      if (deadlinePassed(signal)) finish();
    };
    const t = setTimeout(finish, ms);
    function finish() {
      clearTimeout(t);
      signal.removeEventListener("abort", onAbort);
      resolve();
    }
    signal.addEventListener("abort", onAbort);
  });

/**
 * The Connect routes. One closure over 120 lines, on purpose: it is a table — one short handler
 * per RPC, grouped by service — and every handler shares the deps and the per-call helpers
 * (actor, request, error mapping) defined once at its top; split up, each piece would take them
 * all as parameters.
 */
export function connectRoutes(deps: ConnectDeps) {
  const { ctx, builds, log } = deps;
  const platformOf = (p: number) => (p === BuilderPlatform.UNSPECIFIED ? deps.defaultPlatform : PLATFORM_OF_BUILDER[p]);
  const requestOf = (c: HandlerContext): Request => c.values.get(REQUEST)!;
  const actorOf = async (c: HandlerContext): Promise<Actor> => c.values.get(ACTOR) ?? ctx.actorOf(requestOf(c));

  /** The project, if `a` may do `action` on it; a foreign project answers exactly like a missing one. */
  const projectFor = (a: Actor, id: string, action: "project:read" | "project:update" | "project:delete"): Project => {
    const p = ctx.projects.get(nonEmpty(id, "projectId"));
    authorize(a, action, { orgId: p.org_id, projectId: p.id });
    return p;
  };

  /** CreateProject's organization: the one named (id or slug), else the only one the credential sees. */
  const orgForCreate = (a: Actor, named: string | undefined): Organization => {
    if (named) return ctx.orgs.get(nonEmpty(named, "organizationId"));
    const visible = ctx.orgs.listFor(a);
    if (visible.length === 1) return visible[0]!;
    const detail = "name it with --organization ORG_ID (or `depot org switch ORG_ID`)";
    if (visible.length === 0)
      throw new InvalidInputError(
        `name the organization: this credential belongs to none (projects are created with an organization token or an owner's user token); ${detail}`,
        [{ pointer: "/organizationId", detail: "required" }],
      );
    throw new InvalidInputError(
      `name the organization, you can see ${visible.length} (${visible.map((o) => o.id).join(", ")}): ${detail}`,
      [{ pointer: "/organizationId", detail: "required" }],
    );
  };

  function safeOrgName(orgId: string): string {
    try {
      return ctx.orgs.get(orgId).name;
    } catch (e) {
      if (e instanceof NotFoundError) return "";
      throw e;
    }
  }

  /** A service error as a ConnectError (an unexpected one logged with the request id, its text not shown). */
  const asConnectError = (c: HandlerContext, e: unknown): ConnectError => {
    if (e instanceof ConnectError) return e;
    const { code, message, unexpected } = connectErrorOf(e);
    if (unexpected)
      log.error("rpc failed", {
        request_id: requestInfo(requestOf(c)).id,
        path: `/${c.service.typeName}/${c.method.name}`,
        error: e as Error,
        stack: (e as Error)?.stack,
      });
    return new ConnectError(message, code);
  };

  /** A unary implementation: bounded by the call's deadline, its errors as Connect errors. */
  const unary =
    <I, O>(fn: (input: I, c: HandlerContext) => Promise<O> | O) =>
    async (input: I, c: HandlerContext): Promise<O> => {
      try {
        return await untilAborted(
          c.signal,
          Promise.resolve().then(() => fn(input, c)),
        );
      } catch (e) {
        throw asConnectError(c, e);
      }
    };

  // Each method's own read limit: status batches are larger than unary bodies, a login request is tiny.
  const readLimit = (path: string) =>
    path === METHODS.reportStatusStream.path
      ? deps.maxMessageBytes
      : path === METHODS.finishLogin.path
        ? LOGIN_REQUEST_BYTES
        : deps.maxUnaryBytes;
  const implementations: [DescService, object][] = [];
  const serve = <S extends DescService>(service: S, impl: ServiceImpl<S>) => void implementations.push([service, impl]);
  /** A router with every method, each with its read limit; for binary bodies, gzip-inflated
   * messages are held to the decoding limit (a JSON body is text: the limit does not apply). */
  const routerFor = (binary: boolean) => {
    const router = createConnectRouter({
      connect: true,
      grpc: false,
      grpcWeb: false,
      // A field or enum name the contract does not have is refused, not silently dropped.
      // Enums are written as numbers, as the depot CLI's own JSON reader and Slipway's CLI expect.
      jsonOptions: { ignoreUnknownFields: false, enumAsInteger: true },
      // Replies under this go uncompressed even to a client that accepts gzip: the build
      // connection's (two certificates and a key, ~2 KB of base64 that gzip shrinks by a quarter)
      // cost ~0.1 ms of the event loop per admission to compress, for a few hundred bytes saved.
      compressMinBytes: COMPRESS_MIN_BYTES,
      // Authenticate before the body is read or decoded: an anonymous caller costs no memory.
      async requestGate(c) {
        if (ANONYMOUS_METHODS.has(`/${c.service.typeName}/${c.method.name}`)) return;
        try {
          c.values.set(ACTOR, await ctx.actorOf(requestOf(c)));
        } catch (e) {
          throw asConnectError(c, e);
        }
      },
    });
    for (const [service, impl] of implementations) {
      for (const m of service.methods) {
        const options = {
          readMaxBytes: readLimit(`/${service.typeName}/${m.name}`),
          acceptCompression: [compressionGzip(binary ? m.input : null)],
        };
        router.rpc(m, (impl as Record<string, MethodImpl<typeof m>>)[m.localName]!, options);
      }
    }
    return new Map(router.handlers.map((h) => [h.requestPath, h]));
  };

  serve(BuildService, {
    createBuild: unary(async (input, c) => {
      const a = await actorOf(c);
      const scope = projectScope(a); // a credential bound to one project implies it
      const projectId = input.projectId ? input.projectId : scope.length === 1 ? scope[0]! : null;
      if (!projectId)
        throw new InvalidInputError("project_id is required (--project, DEPOT_PROJECT_ID or depot.json)", [
          { pointer: "/projectId", detail: "required" },
        ]);
      if (input.requiredEngine?.engine.case === "dagger")
        throw new ConnectError("Slipway builders run BuildKit; Dagger engines are not available", Code.Unimplemented);
      const options = input.options.map((o) => ({
        command: o.command as number,
        tags: o.tags,
        outputs: o.outputs.map((x) => ({ kind: x.kind, attributes: { ...x.attributes } })),
        push: o.push,
        load: o.load,
        save: o.save,
        ...(o.targetName ? { target: o.targetName } : {}),
      }));
      const save = input.options.some((o) => o.save);
      const saveTags = [...new Set(input.options.flatMap((o) => o.saveTags))];
      // --load goes through the registry when builders can push to it: the CLI then saves the
      // build and pulls it into the client's Docker (GetPullInfo).
      const loadUsingRegistry = Boolean(deps.registry?.pushable()) && deps.imageExport();
      const viaRegistry = save || (loadUsingRegistry && input.options.some((o) => o.load));
      if (save) {
        if (a.kind === "anonymous") authorize(a, "build:run"); // 401 before the server's set-up is told
        if (!deps.registry)
          throw new ConnectError(
            "--save needs the appliance's registry, which this server does not run",
            Code.FailedPrecondition,
          );
        deps.registry.validateSave(saveTags); // before the build exists: a refusal leaves nothing made (builds.create refuses builders without the image exporter)
      }
      const { build, token } = builds.create(a, nonEmpty(projectId, "projectId"), options); // id or ORG/NAME
      const targets = viaRegistry
        ? deps.registry!.saveTargets({ id: build.id, projectId: build.project_id }, token, saveTags)
        : null;
      return {
        buildId: build.id,
        buildToken: token,
        registry: { canUseLocalRegistry: false, proxyImage: "", loadUsingRegistry },
        buildUrl: builds.buildUrl(build.id),
        projectId: build.project_id,
        additionalCredentials: targets?.credentials ?? [],
        additionalTags: (targets?.tags ?? []).map((tag) => ({ tag, push: true })),
      };
    }),
    getBuild: unary(async (input, c) => {
      const b = builds.read(await actorOf(c), nonEmpty(input.buildId, "buildId"));
      return { buildId: b.id, projectId: b.project_id, buildUrl: builds.buildUrl(b.id) };
    }),
    finishBuild: unary(async (input, c) => {
      const r = input.result;
      const result =
        r.case === "success"
          ? { kind: "success" as const }
          : r.case === "error"
            ? { kind: "error" as const, error: r.value.error }
            : r.case === "canceled"
              ? { kind: "canceled" as const }
              : null;
      if (!result)
        throw new InvalidInputError("one of success, error or canceled is required", [
          { pointer: "/result", detail: "required" },
        ]);
      builds.finish(await actorOf(c), nonEmpty(input.buildId, "buildId"), result);
      return {};
    }),
    getBuildKitConnection: unary(async (input, c) => {
      const platform = platformOf(input.platform);
      if (!platform)
        throw new InvalidInputError(`unknown platform ${input.platform}`, [
          { pointer: "/platform", detail: "BUILDER_PLATFORM_AMD64 or BUILDER_PLATFORM_ARM64" },
        ]);
      // Held while the builder starts (see CONNECTION_HOLD_MS), and never past the client's own deadline.
      const deadline = c.timeoutMs();
      const ms = Math.min(CONNECTION_HOLD_MS, deadline === undefined ? Infinity : deadline - DEADLINE_MARGIN_MS);
      const conn = await builds.connection(await actorOf(c), nonEmpty(input.buildId, "buildId"), platform, {
        ms: Math.max(0, ms),
        signal: c.signal,
      });
      if (conn.kind === "pending") return { connection: { case: "pending", value: { waitMs: conn.waitMs } } };
      const active = {
        endpoint: conn.endpoint,
        serverName: conn.serverName,
        cert: { cert: conn.certPem, key: conn.keyPem },
        caCert: { cert: conn.caPem, key: "" },
        compressor: { case: "identity" as const, value: {} },
      };
      return { connection: { case: "active", value: active } };
    }),
    reportBuildHealth: unary(async (input, c) => {
      const { cancelsAt } = builds.health(await actorOf(c), nonEmpty(input.buildId, "buildId"));
      return cancelsAt ? { cancelsAt: timestampFromDate(cancelsAt) } : {};
    }),
    reportTimings: unary(async (input, c) => {
      // Only steps with a stable digest can be matched to BuildKit's; the rest are not kept.
      const steps = input.buildSteps
        .filter((s) => s.stableDigest)
        .map((s) => {
          const started = s.startTime ? timestampDate(s.startTime) : null;
          return {
            digest: s.stableDigest!,
            name: s.name,
            cached: s.cached,
            started,
            completed: started ? new Date(started.getTime() + s.durationMs) : null,
            error: s.error ?? "",
          };
        });
      builds.report(await actorOf(c), nonEmpty(input.buildId, "buildId"), { steps, logs: [] });
      return {};
    }),
    reportStatus: unary(async (input, c) => {
      builds.report(await actorOf(c), nonEmpty(input.buildId, "buildId"), statusToReport(input.statuses));
      return {};
    }),
    /** Every message is a status batch; the reply comes when the client ends. */
    async reportStatusStream(requests, c) {
      const request = requestOf(c);
      let frames = 0;
      try {
        const actor = await actorOf(c);
        holdOpen(request); // a long step may send nothing for minutes
        for await (const msg of requests) {
          builds.report(actor, nonEmpty(msg.buildId, "buildId"), statusToReport(msg.statuses));
          frames++;
        }
      } catch (e) {
        // The client went away (it ends the stream by closing when the build is done): what arrived is kept.
        if (request.signal.aborted || (e as Error)?.name === "AbortError") {
          log.debug("status stream closed by the client", { frames });
          return {};
        }
        log.debug("status stream ended", { frames, error: (e as Error)?.message });
        throw asConnectError(c, e);
      }
      log.debug("status stream ended", { frames });
      return {};
    },
    reportBuildContext: unary(async (input, c) => {
      builds.read(await actorOf(c), nonEmpty(input.buildId, "buildId")); // accepted, not kept
      return {};
    }),
    listBuilds: unary(async (input, c) => {
      const page = builds.list(
        await actorOf(c),
        nonEmpty(input.projectId, "projectId"),
        input.pageSize,
        input.pageToken || null,
      );
      return {
        builds: page.builds.map((b) => ({
          id: b.id,
          status: STATUS_OF[b.status],
          createdAt: timestampFromDate(new Date(b.created_at)),
          ...(b.finished_at ? { finishedAt: timestampFromDate(new Date(b.finished_at)) } : {}),
        })),
        nextPageToken: page.next ?? "",
      };
    }),
    getPullInfo: unary(async (input, c) => {
      const a = await actorOf(c);
      const b = builds.read(a, nonEmpty(input.buildId, "buildId"));
      const p = ctx.projects.get(b.project_id);
      authorize(a, "registry:pull", { orgId: p.org_id, projectId: p.id });
      if (!deps.registry?.available())
        throw new ConnectError(
          `the appliance's registry is not available (${deps.registry?.status().detail ?? "not configured"}): build with --push, --output or --load instead`,
          Code.FailedPrecondition,
        );
      const { token, expiresAt } = await deps.registry.pullToken({ orgId: p.org_id, projectId: p.id });
      ctx.audit.record({
        orgId: p.org_id,
        actor: a,
        action: "registry.pull_token",
        target: p.id,
        details: { build: b.id, expires_at: expiresAt.toISOString() },
      });
      return {
        reference: deps.registry.reference(p.id, b.id),
        username: "x-token",
        password: token,
        options: [],
        saveForLoad: false,
      };
    }),
    getPullToken: unary(async (input, c) => {
      const a = await actorOf(c);
      const buildId = input.buildId || null;
      const scope = projectScope(a);
      const projectId = buildId
        ? builds.read(a, buildId).project_id
        : input.projectId
          ? input.projectId
          : scope.length === 1
            ? scope[0]!
            : null;
      if (!projectId)
        throw new InvalidInputError("project_id or build_id is required (--project, DEPOT_PROJECT_ID or depot.json)", [
          { pointer: "/projectId", detail: "required" },
        ]);
      const p = ctx.projects.get(nonEmpty(projectId, "projectId"));
      authorize(a, "registry:pull", { orgId: p.org_id, projectId: p.id });
      if (!deps.registry?.available())
        throw new ConnectError(
          `the appliance's registry is not available (${deps.registry?.status().detail ?? "not configured"})`,
          Code.FailedPrecondition,
        );
      const { token, expiresAt } = await deps.registry.pullToken({ orgId: p.org_id, projectId: p.id });
      ctx.audit.record({
        orgId: p.org_id,
        actor: a,
        action: "registry.pull_token",
        target: p.id,
        details: { expires_at: expiresAt.toISOString() },
      });
      return { token };
    }),
  });

  serve(PushService, {
    startPush: unary(() => {
      throw new ConnectError(
        "depot push copies a saved build's layers from Depot's own blob service, which a Slipway appliance is not: pull it with `depot pull <build id> -t IMAGE` and `docker push IMAGE`, or build with --push",
        Code.Unimplemented,
      );
    }),
    finishPush: unary(() => {
      throw new ConnectError("depot push is not available on a Slipway appliance (see StartPush)", Code.Unimplemented);
    }),
  });

  serve(ProjectsService, {
    listProjects: unary(async (_input, c) => {
      const a = await actorOf(c);
      authorize(a, "visible:list");
      const orgNames = new Map(ctx.orgs.listFor(a).map((o) => [o.id, o.name]));
      return {
        projects: ctx.projects.visibleTo(a).map((p) => ({
          id: p.id,
          name: p.name,
          orgId: p.org_id,
          orgName: orgNames.get(p.org_id) ?? safeOrgName(p.org_id),
        })),
      };
    }),
    resetProjectCache: unary(async (input, c) => {
      const a = await actorOf(c);
      const p = ctx.projects.get(nonEmpty(input.projectId, "projectId"));
      authorize(a, "cache:reset", { orgId: p.org_id, projectId: p.id });
      await deps.resetCache(p.id, a);
      return { name: p.name, orgName: safeOrgName(p.org_id) };
    }),
  });

  serve(LoginService, {
    startLogin: unary((_input, c) => {
      const request = requestOf(c);
      // Rate-limited per address by the service (one limit with the REST start).
      const started = ctx.deviceLogins.start(
        { clientName: "depot CLI", ip: ctx.ip(request), userAgent: request.headers.get("user-agent") },
        ctx.publicUrl,
      );
      // The depot CLI prints only this link, so the code rides in its fragment for the person to
      // read and type; the page never fills it in (and a fragment never reaches a server's logs).
      return { id: started.device_code, approveUrl: `${started.verification_uri}#${started.user_code}` };
    }),
    /** Waits (server stream) until the device login is approved, then sends the token. */
    async *finishLogin(input, c) {
      try {
        const id = nonEmpty(input.id, "id");
        holdOpen(requestOf(c)); // until a person approves, which takes longer than the idle timeout
        const deadline = Date.now() + 10 * 60_000;
        for (;;) {
          // The client may give up (Ctrl-C on `depot login`), or its Connect-Timeout-Ms pass.
          if (c.signal.aborted) {
            if (deadlinePassed(c.signal)) throw c.signal.reason;
            log.debug("login stream closed by the client");
            return;
          }
          const r = ctx.deviceLogins.poll(id);
          if (r.status === "approved") {
            yield { token: r.token };
            return;
          }
          if (Date.now() > deadline)
            throw new ConnectError("the login was not approved in time", Code.DeadlineExceeded);
          await pause(2500, c.signal); // the device-login poll interval
        }
      } catch (e) {
        throw asConnectError(c, e);
      }
    },
  });

  serve(OrganizationService, {
    listOrganizations: unary(async (_input, c) => {
      const a = await actorOf(c);
      authorize(a, "visible:list");
      return {
        organizations: ctx.orgs
          .listFor(a)
          .map((o) => ({ orgId: o.id, name: o.name, createdAt: timestampFromDate(new Date(o.created_at)) })),
      };
    }),
  });

  serve(ProjectService, {
    listProjects: unary(async (_input, c) => {
      const a = await actorOf(c);
      authorize(a, "visible:list");
      return { projects: ctx.projects.visibleTo(a).map(coreProject) };
    }),
    getProject: unary(async (input, c) => ({
      project: coreProject(projectFor(await actorOf(c), input.projectId, "project:read")),
    })),
    createProject: unary(async (input, c) => {
      const a = await actorOf(c);
      const org = orgForCreate(a, input.organizationId);
      authorize(a, "project:create", { orgId: org.id });
      // region_id is not kept: the CLI always sends one (us-east-1 unless --region), and builds run here.
      const settings = input.cachePolicy ? cacheSettings(input.cachePolicy) : {};
      return { project: coreProject(ctx.projects.create(org.id, { name: projectName(input.name), ...settings }, a)) };
    }),
    updateProject: unary(async (input, c) => {
      const a = await actorOf(c);
      const p = projectFor(a, input.projectId, "project:update");
      if (input.regionId)
        throw new InvalidInputError(
          "Slipway has no regions: a project's builds and caches stay on this appliance (leave out --region)",
          [{ pointer: "/regionId", detail: "not offered" }],
        );
      const patch = {
        ...(input.name !== undefined ? { name: projectName(input.name) } : {}),
        ...(input.cachePolicy ? cacheSettings(input.cachePolicy) : {}),
      };
      return { project: coreProject(ctx.projects.update(p.id, patch, a)) };
    }),
    deleteProject: unary(async (input, c) => {
      const a = await actorOf(c);
      await ctx.projects.delete(projectFor(a, input.projectId, "project:delete").id, a);
      return {};
    }),
  });

  const binaryHandlers = routerFor(true);
  const jsonHandlers = routerFor(false);
  let app = new Elysia({ name: "routes/connect" });
  for (const method of Object.values(METHODS) as RpcMethod[]) {
    const binary = binaryHandlers.get(method.path);
    const json = jsonHandlers.get(method.path);
    if (!binary || !json) throw new Error(`${method.path} has no implementation`); // at start-up, never per call
    const stream = method.kind !== "unary";
    const limits = { input: method.input, readMaxBytes: readLimit(method.path) };
    app = app.post(
      method.path,
      ({ request }) => {
        const id = requestInfo(request).id;
        // A Content-Type that is not this call's Connect kind: said plainly, as Connect error JSON.
        if (connectContentKind(request.headers.get("content-type")) !== (stream ? "stream" : "unary")) {
          const want = stream
            ? "application/connect+proto or application/connect+json"
            : "application/proto or application/json";
          return unaryError(Code.InvalidArgument, `Content-Type must be ${want}`, id);
        }
        const handler = /json/.test(request.headers.get("content-type") ?? "") ? json : binary;
        return serveUniversal(handler, request, limits, { "x-request-id": id });
      },
      { detail: { hide: true } },
    ) as unknown as typeof app;
  }
  // Every other depot method (the router prefers any exact route, wherever it is declared).
  return app.post(
    "/depot.*",
    ({ request }) => {
      log.debug("depot RPC not offered", { request_id: requestInfo(request).id, path: new URL(request.url).pathname });
      return unofferedResponse(request);
    },
    { detail: { hide: true } },
  );
}
