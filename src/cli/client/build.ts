/**
 * @module cli/client/build
 * `slipway build` (like `docker build`, on the project's builder) and `slipway buildkit-env` (a
 * local forwarder any BuildKit client can use, for one command or until Ctrl-C). Both speak the
 * same build API as the depot CLI.
 */
import { constants as osConstants } from "node:os";
import { apiClientFactory } from "../../api-client/index.ts";
import {
  buildCommands,
  ciOidcToken,
  findBuildkitClient,
  forwardListener,
  forwardSocket,
  NO_CLIENT,
  openSession,
  resolveProject,
  type BuildArgs,
  type Session,
} from "./build-session.ts";
import { list, str } from "../subcommands.ts";
import { NOT_LOGGED_IN, resolveConnection } from "./saved-login.ts";
import { PreconditionError, UsageError } from "../../errors.ts";
import { builderPlatformOf, localPlatform } from "../../wire/depot.ts";
import { EXIT_FAILED, EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";

const HEALTH_INTERVAL_MS = 5000;

/** What a person sees while a builder starts (openSession paces the calls). */
const startingNote =
  (io: CommandContext["io"]) =>
  (platform: string, waitedMs: number): void =>
    io.err(`slipway: starting the ${platform} builder… (${(waitedMs / 1000).toFixed(1)} s)`);

/** Server, credential (flag, env, saved login, else the CI job's OIDC token) and CA. */
async function connection(ctx: CommandContext) {
  const c = resolveConnection(ctx.client, ctx.env, { requireToken: false });
  const token = c.token ?? (await ciOidcToken(ctx.env, ctx.env.SLIPWAY_OIDC_AUDIENCE ?? c.server.replace(/\/+$/, "")));
  if (!token) throw new UsageError(NOT_LOGGED_IN);
  return { server: c.server, caPem: c.caPem, api: apiClientFactory({ server: c.server, token, caPem: c.caPem }) };
}

function platformsOf(ctx: CommandContext): string[] {
  const p = list(ctx, "platform")
    .flatMap((x) => x.split(","))
    .map((x) => x.trim())
    .filter(Boolean);
  const platforms = p.length ? p.map((x) => (x.includes("/") ? x : `linux/${x}`)) : [localPlatform()];
  // Checked before anything is created on the server.
  for (const x of platforms)
    if (!builderPlatformOf(x)) throw new UsageError(`--platform ${x}: expected linux/amd64 or linux/arm64`);
  return platforms;
}

/** Output specs (`type=local,dest=out`) as the build API records them. */
function outputsOf(specs: string[]) {
  return specs.map((s) => {
    const attributes: Record<string, string> = {};
    for (const part of s.split(",")) {
      const [k, ...v] = part.split("=");
      if (k) attributes[k.trim()] = v.join("=");
    }
    const kind = attributes.type ?? "local";
    delete attributes.type;
    return { kind, attributes };
  });
}

/** Runs `argv` with its output passed through (stdout piped when it is the image); stderr is read for errors. */
function spawnPassthrough(
  argv: string[],
  env: Record<string, string | undefined>,
  stdout: "inherit" | "pipe" = "inherit",
) {
  return Bun.spawn(argv, { stdin: "ignore", stdout, stderr: "pipe", env: { ...process.env, ...env } });
}

export const buildCommand: Command = {
  name: "build",
  summary: "build a Dockerfile on the project's builder (like docker build)",
  usage:
    "slipway build [--project P] [--platform linux/amd64,linux/arm64] [-t TAG] [-f Dockerfile] [--build-arg K=V] [--target T] [--push] [--load] [--output SPEC] [--no-cache] [--progress auto|plain] PATH",
  options: {
    project: { type: "string" },
    platform: { type: "string", multiple: true },
    tag: { type: "string", short: "t", multiple: true },
    file: { type: "string", short: "f" },
    "build-arg": { type: "string", multiple: true },
    target: { type: "string" },
    push: { type: "boolean" },
    load: { type: "boolean" },
    output: { type: "string", short: "o", multiple: true },
    "no-cache": { type: "boolean" },
    progress: { type: "string" },
  },
  optionHelp: {
    project: 'project id or ORG/NAME (env SLIPWAY_PROJECT, or slipway.json {"id": …} in this or a parent directory)',
    platform: "target platforms, comma-separated or repeated (default: this machine's)",
    tag: "image name and tag (repeatable)",
    file: "Dockerfile path (default PATH/Dockerfile)",
    "build-arg": "build-time variable K=V (repeatable)",
    target: "build stage to stop at",
    push: "push the image to its registry",
    load: "load the image into this machine's Docker (needs a builder with the docker exporter: builders.dockerd_containerd_store)",
    output: "output spec, e.g. type=local,dest=out or type=tar,dest=out.tar (repeatable)",
    "no-cache": "do not use the cache",
    progress: "auto or plain (default auto)",
  },
  positionals: true,
  async run(ctx) {
    if (ctx.positionals.length !== 1) throw new UsageError("build needs exactly one PATH (the build context)");
    const context = ctx.positionals[0]!;
    const progress = (str(ctx, "progress") ?? "auto") as BuildArgs["progress"];
    if (progress !== "auto" && progress !== "plain")
      throw new UsageError(`--progress ${progress}: expected auto or plain`);
    const project = resolveProject(str(ctx, "project"), ctx.env, context);
    if (!project)
      throw new UsageError(
        'which project? pass --project, set SLIPWAY_PROJECT, or put slipway.json {"id": "prj_…"} in the context or a parent directory',
      );
    const args: BuildArgs = {
      context,
      platforms: platformsOf(ctx),
      tags: list(ctx, "tag"),
      file: str(ctx, "file"),
      buildArgs: list(ctx, "build-arg"),
      target: str(ctx, "target"),
      push: ctx.values.push === true,
      load: ctx.values.load === true,
      outputs: list(ctx, "output"),
      noCache: ctx.values["no-cache"] === true,
      progress,
    };
    const client = findBuildkitClient(ctx.env);
    if (!client) throw new PreconditionError(NO_CLIENT);
    const { server, caPem, api } = await connection(ctx);
    const session = await openSession(
      api,
      server,
      caPem,
      project,
      args.platforms,
      { tags: args.tags, push: args.push, load: args.load, outputs: outputsOf(args.outputs), target: args.target },
      startingNote(ctx.io),
    );
    ctx.io.err(
      `slipway: build ${session.buildId} (${session.buildUrl}) on ${args.platforms.join(", ")} with ${client.kind}`,
    );
    return runBuild(ctx, session, client, args);
  },
};

async function runBuild(
  ctx: CommandContext,
  session: Session,
  client: NonNullable<ReturnType<typeof findBuildkitClient>>,
  args: BuildArgs,
): Promise<number> {
  // buildx wants one endpoint per node; with several platforms each gets a local socket.
  const forwards =
    client.kind === "buildx" && session.connections.length > 1
      ? await Promise.all(session.connections.map((c) => forwardSocket(c)))
      : [];
  const cmds = buildCommands(client, session, args);
  let canceled = false;
  let child: ReturnType<typeof spawnPassthrough> | null = null;
  const health = setInterval(async () => {
    try {
      const cancelsAt = await session.health();
      if (cancelsAt && cancelsAt.getTime() <= Date.now() + HEALTH_INTERVAL_MS && !canceled) {
        canceled = true;
        ctx.io.err(`slipway: the build was canceled (${cancelsAt.toISOString()}); stopping`);
        child?.kill("SIGTERM");
        setTimeout(() => child?.kill("SIGKILL"), 5000).unref?.();
      }
    } catch (e) {
      ctx.io.err(`slipway: health report failed: ${(e as Error).message}`);
    }
  }, HEALTH_INTERVAL_MS);
  const onSignal = () => {
    canceled = true;
    child?.kill("SIGTERM");
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    for (const argv of cmds.setup) {
      // Not spawnSync: `buildx create --append` dials the nodes already created, which may be
      // this process's own forwarding sockets; a blocked event loop leaves it waiting ~20 s.
      const p = Bun.spawn(argv, { env: { ...process.env, ...cmds.env }, stdout: "ignore", stderr: "pipe" });
      const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
      if (code !== 0) throw new PreconditionError(`${argv[0]} ${argv[1]} failed: ${stderr.trim().slice(-500)}`);
    }
    child = spawnPassthrough(cmds.build, cmds.env, cmds.loadInto ? "pipe" : "inherit");
    const loader = cmds.loadInto
      ? Bun.spawn(cmds.loadInto, {
          stdin: child.stdout as ReadableStream<Uint8Array>,
          stdout: "inherit",
          stderr: "inherit",
        })
      : null;
    let tail = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      const text = decoder.decode(chunk);
      process.stderr.write(text);
      tail = (tail + text).slice(-4000);
    }
    let code = await child.exited;
    const loaded = loader ? await loader.exited : 0;
    if (code === 0 && loaded !== 0) {
      tail += `\n${cmds.loadInto!.join(" ")} failed (exit ${loaded})`;
      code = loaded;
    }
    if (canceled) {
      await session.finish({ canceled: true });
      ctx.io.err("slipway: build canceled");
      return EXIT_FAILED;
    }
    if (code === 0) {
      await session.finish({ success: true });
      if (ctx.client.json)
        printJson(ctx.io, { build_id: session.buildId, build_url: session.buildUrl, status: "finished" });
      return EXIT_OK;
    }
    const error =
      tail
        .split("\n")
        .filter((l) => /error|failed/i.test(l))
        .slice(-3)
        .join("\n") || `${client.kind} exited with ${code}`;
    await session.finish({ error });
    return EXIT_FAILED;
  } catch (e) {
    await session.finish({ error: (e as Error).message }).catch(() => {});
    throw e;
  } finally {
    clearInterval(health);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const argv of cmds.teardown)
      Bun.spawnSync(argv, { env: { ...process.env, ...cmds.env }, stdout: "ignore", stderr: "ignore" });
    for (const f of forwards) f.close();
    session.close();
  }
}

export const buildkitEnvCommand: Command = {
  name: "buildkit-env",
  summary: "open a build for any BuildKit client: run CMD with BUILDKIT_HOST set, or print it and hold until Ctrl-C",
  usage: "slipway buildkit-env [--project P] [--platform linux/amd64] [-- CMD ARGS…]",
  options: { project: { type: "string" }, platform: { type: "string", multiple: true } },
  optionHelp: {
    project: "project id or ORG/NAME (env SLIPWAY_PROJECT, or slipway.json)",
    platform: "the builder's platform (default: this machine's)",
  },
  positionals: true,
  async run(ctx) {
    const platforms = platformsOf(ctx);
    if (platforms.length !== 1) throw new UsageError("buildkit-env opens one platform; run it once per platform");
    const project = resolveProject(str(ctx, "project"), ctx.env, process.cwd());
    if (!project)
      throw new UsageError(
        "which project? pass --project, set SLIPWAY_PROJECT, or put slipway.json in this or a parent directory",
      );
    const command = ctx.positionals;
    const { server, caPem, api } = await connection(ctx);
    const session = await openSession(
      api,
      server,
      caPem,
      project,
      platforms,
      { tags: [], push: false, outputs: [] },
      startingNote(ctx.io),
    );
    let fwd: Awaited<ReturnType<typeof forwardListener>> | null = null;
    try {
      fwd = await forwardListener(session.connections[0]!, (e) =>
        ctx.io.err(`slipway: a connection to the build endpoint failed: ${e.message}`),
      );
      const host = `tcp://127.0.0.1:${fwd.port}`;
      if (command.length > 0) return await runWithBuildkitHost(ctx, session, host, command);
      if (ctx.client.json)
        printJson(ctx.io, { build_id: session.buildId, build_url: session.buildUrl, buildkit_host: host });
      else {
        ctx.io.out(`export BUILDKIT_HOST=${host}`);
        ctx.io.err(
          `slipway: build ${session.buildId} is open; point BuildKit clients at ${host}. Ctrl-C ends the build (in a script: slipway buildkit-env -- CMD ARGS…).`,
        );
      }
      const result = await new Promise<"done" | "canceled">((resolveEnd) => {
        const timer = setInterval(async () => {
          try {
            if (await session.health()) resolveEnd("canceled");
          } catch {
            // the next report may get through
          }
        }, HEALTH_INTERVAL_MS);
        const stop = () => {
          clearInterval(timer);
          resolveEnd("done");
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await session.finish(result === "done" ? { success: true } : { canceled: true }).catch(() => {});
      return result === "done" ? EXIT_OK : EXIT_FAILED;
    } catch (e) {
      await session.finish({ error: (e as Error).message }).catch(() => {});
      throw e;
    } finally {
      fwd?.close();
      session.close();
    }
  },
};

/**
 * `buildkit-env -- CMD ARGS…`: runs CMD with BUILDKIT_HOST set, reporting health meanwhile; the
 * build ends with CMD (success when it exits 0) and the exit code is CMD's. A cancel stops CMD.
 */
async function runWithBuildkitHost(
  ctx: CommandContext,
  session: Session,
  host: string,
  command: string[],
): Promise<number> {
  let child: ReturnType<typeof Bun.spawn>;
  try {
    child = Bun.spawn(command, {
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
      env: { ...process.env, ...ctx.env, BUILDKIT_HOST: host },
    });
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "command not found" : (e as Error).message;
    await session.finish({ error: `cannot run ${command[0]}: ${why}` }).catch(() => {});
    ctx.io.err(`slipway: cannot run ${command[0]}: ${why}`);
    return 127; // as a shell answers
  }
  ctx.io.err(`slipway: build ${session.buildId} (${session.buildUrl}) is open at ${host} for ${command[0]}`);
  let canceled = false;
  const health = setInterval(async () => {
    try {
      const cancelsAt = await session.health();
      if (cancelsAt && cancelsAt.getTime() <= Date.now() + HEALTH_INTERVAL_MS && !canceled) {
        canceled = true;
        ctx.io.err(`slipway: the build was canceled (${cancelsAt.toISOString()}); stopping ${command[0]}`);
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref?.();
      }
    } catch (e) {
      ctx.io.err(`slipway: health report failed: ${(e as Error).message}`);
    }
  }, HEALTH_INTERVAL_MS);
  // A terminal's Ctrl-C reaches CMD itself (same process group); a TERM sent to us is passed on.
  const onSignal = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const code = await child.exited;
    const exit = child.signalCode ? 128 + (osConstants.signals[child.signalCode as NodeJS.Signals] ?? 0) : code;
    if (canceled) await session.finish({ canceled: true });
    else await session.finish(exit === 0 ? { success: true } : { error: `${command[0]} exited with ${exit}` });
    if (ctx.client.json) printJson(ctx.io, { build_id: session.buildId, build_url: session.buildUrl, exit_code: exit });
    return exit;
  } finally {
    clearInterval(health);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
