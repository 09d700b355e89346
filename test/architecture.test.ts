/**
 * @module test/architecture
 * The shape of src/, checked on every run: no import circles, no import from a lower floor to a
 * higher one, the runner-host agent and the client-side commands import only the contract they
 * share with the server, only src/host starts processes, every file opens with a `/** @module`
 * header, and no comment cites a Markdown file the repository does not have. ARCHITECTURE.md
 * describes the same floors in prose; the tables below are the rule.
 *
 * Imports are read with the TypeScript compiler's pre-processor, so `import type`, `export …
 * from` and `import()` all count: a type-only import still couples two rooms.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

// ---------------------------------------------------------------------------------------------
// The rules, as data. Paths are relative to src/; a folder ends with "/". A file belongs to the
// longest prefix that matches it, so a single file can be placed apart from its folder.
// ---------------------------------------------------------------------------------------------

/**
 * The floors, top to bottom. A file may import from its own floor or any floor below it, never
 * from one above. Rooms on one floor may import each other, but not in a circle.
 */
export const FLOORS: { floor: string; rooms: string[] }[] = [
  { floor: "entry", rooms: ["main.ts"] },
  // The command-line program: the dispatcher, the host-side commands (cli/server/), the
  // client-side commands (cli/client/) and `slipway agent`.
  { floor: "commands", rooms: ["cli/"] },
  // Start-up wiring: builds every service and hands it to the API and the build endpoint.
  // Diagnosis of the host and the data dir (`slipway doctor`): it reuses start-up's own checks
  // and asks every capability, so it sits above them all and below the command that runs it.
  { floor: "diagnosis", rooms: ["doctor/"] },
  { floor: "appliance", rooms: ["appliance/"] },
  // HTTP: REST routes, Connect RPC, OpenAPI, the web UI's assets.
  { floor: "api", rooms: ["api/", "web/"] },
  // One room per capability, each owning its tables and host commands.
  {
    floor: "capabilities",
    rooms: [
      "auth/",
      "builds/",
      "builders/",
      "projects/",
      "orgs/",
      "egress/",
      "registry/",
      "pki/",
      "volumes/",
      "retention/",
    ],
  },
  // Programs that run away from the server: the runner-host agent and the appliance's API
  // client. Below the capabilities because `serve` runs the agent in-process for runner hosts
  // designated local (egress/local.ts); CLIENT_SIDE below keeps them to the contract.
  { floor: "client side", rooms: ["agent/", "api-client/"] },
  // Machinery with no business rules: the database, host commands, HTTP plumbing, secrets at
  // rest, the build endpoint's proxy, life under systemd (sd_notify, the journal).
  { floor: "infrastructure", rooms: ["db/", "host/", "http/", "secrets/", "router/", "systemd/"] },
  // Imported by anyone, importing (almost) nothing: the wire contract, configuration, errors.
  {
    floor: "leaves",
    rooms: [
      "wire/",
      "config/",
      "errors.ts",
      "log/",
      "version.ts",
      "ids.ts",
      "fs/",
      "metrics/",
      "health/",
      "assets.d.ts",
    ],
  },
];

/**
 * Files that run away from the server (the runner-host agent, the client-side commands) or are
 * shared with such files. They may import only each other and CLIENT_MAY_IMPORT.
 */
export const CLIENT_SIDE: (string | RegExp)[] = [
  "agent/",
  "api-client/",
  "cli/client/",
  "cli/agent.ts",
  // What every command shares (parsing, options, output): no server code.
  "cli/command.ts",
  "cli/subcommands.ts",
  "cli/output.ts",
  "cli/version.ts",
  // The help text, shell completion and the bill of materials (read at bundle time): the
  // client-side commands `version`, `completion` and every `--help` use them.
  "cli/help.ts",
  "cli/completion.ts",
  "cli/sbom.ts",
  "cli/sbom.macro.ts",
  // Request and response models are shared with the CLI, so they obey the client's rule too.
  /(^|\/)models\.ts$/,
];

/** The contract client-side files share with the server, and the leaf utilities. */
export const CLIENT_MAY_IMPORT: (string | RegExp)[] = [
  "wire/",
  "config/",
  "errors.ts",
  "log/",
  "version.ts",
  "ids.ts",
  "fs/",
  // The only place host commands run (the agent's iptables, the build client's buildctl).
  "host/",
  // sd_notify and journal detection: the agent runs as a systemd service too.
  "systemd/",
  // The models' strict integer schema (TypeBox only).
  "http/schema.ts",
  /(^|\/)models\.ts$/,
];

/**
 * Known violations, each with its reason; each entry must still occur (a stale entry fails the
 * test). Empty: add an entry only with a reason a reviewer accepts.
 */
export const KNOWN_TODAY: { rule: "circle" | "floor" | "client"; from: string; to: string; why: string }[] = [];

/** The room that runs host programs; elsewhere, a process is started only through it. */
export const HOST_ROOM = "host/";

/** Files that start processes themselves today, each with its reason. */
export const SPAWNS_OUTSIDE_HOST: { file: string; why: string }[] = [
  // Kept apart from src/host/run.ts, which captures output: this attaches the terminal and pipes
  // one child into another.
  {
    file: "cli/client/build.ts",
    why: "runs the person's BuildKit client (docker buildx, buildctl) attached to their terminal, and pipes its output into `docker load`",
  },
  // Not a host program: the hidden VM self-test starts a second copy of this binary to SIGKILL it
  // mid-operation, as a crash would.
  { file: "volumes/selftest.ts", why: "starts a copy of itself (--crash-child) to kill it while a volume is open" },
  // Not a host program and never at run time: the bundler refuses Bun.build inside a macro.
  { file: "web/embed.macro.ts", why: "bundles the web UI with `bun build` while the binary is being bundled" },
];

// ---------------------------------------------------------------------------------------------
// The import graph.
// ---------------------------------------------------------------------------------------------

const ROOT = resolve(import.meta.dir, "..");
const SRC = join(ROOT, "src");

/** The .ts files under dir, tests included or not. */
function sourceFiles(dir: string, withTests = false): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path, withTests));
    else if (entry.name.endsWith(".ts") && (withTests || !entry.name.endsWith(".test.ts"))) out.push(path);
  }
  return out.sort();
}

/** Each src file (relative to src/) → the src files it imports (relative to src/). */
export function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    const targets = new Set<string>();
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith(".")) continue; // packages and node: built-ins
      const target = resolveImport(dirname(file), fileName);
      if (target?.startsWith(`${SRC}/`)) targets.add(relative(SRC, target));
    }
    graph.set(relative(SRC, file), [...targets].sort());
  }
  return graph;
}

function resolveImport(fromDir: string, specifier: string): string | undefined {
  const base = resolve(fromDir, specifier);
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) {
    if (candidate.endsWith(".ts") && existsSync(candidate)) return candidate;
  }
  return undefined; // not TypeScript (an embedded asset, package.json): not part of the graph
}

function matches(path: string, pattern: string | RegExp): boolean {
  return typeof pattern === "string"
    ? pattern.endsWith("/")
      ? path.startsWith(pattern)
      : path === pattern
    : pattern.test(path);
}

/** The room (the longest matching entry of FLOORS) and its floor's index, 0 at the top. */
export function placeOf(path: string): { room: string; floor: number } | undefined {
  let best: { room: string; floor: number } | undefined;
  FLOORS.forEach(({ rooms }, floor) => {
    for (const room of rooms) {
      if (matches(path, room) && (!best || room.length > best.room.length)) best = { room, floor };
    }
  });
  return best;
}

/**
 * Strongly connected components with more than one member (Tarjan): each as one circle through
 * it (first member repeated at the end) and all its members, sorted.
 */
export function circles(graph: Map<string, string[]>): { path: string[]; members: string[] }[] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      const selfLoop = (graph.get(node) ?? []).includes(node);
      if (component.length > 1 || selfLoop) components.push(component);
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return components.map((component) => ({ path: circlePath(graph, component), members: [...component].sort() }));
}

/** One circle through a component's first member (in sorted order), for the message. */
function circlePath(graph: Map<string, string[]>, component: string[]): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0]!;
  // Breadth-first from start's successors back to start, staying inside the component.
  const previous = new Map<string, string>();
  const queue = (graph.get(start) ?? []).filter((n) => members.has(n));
  for (const n of queue) previous.set(n, start);
  while (queue.length > 0) {
    const node = queue.shift()!;
    if (node === start) break;
    for (const next of graph.get(node) ?? []) {
      if (members.has(next) && !previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  const path = [start];
  for (let node = previous.get(start)!; node !== start; node = previous.get(node)!) path.unshift(node);
  path.unshift(start);
  return path;
}

/** The room graph of one floor: which of its rooms import which. */
function roomGraph(graph: Map<string, string[]>, floor: number): Map<string, string[]> {
  const rooms = new Map<string, Set<string>>();
  for (const [from, targets] of graph) {
    const a = placeOf(from);
    if (a?.floor !== floor) continue;
    for (const to of targets) {
      const b = placeOf(to);
      if (b?.floor !== floor || b.room === a.room) continue;
      if (!rooms.has(a.room)) rooms.set(a.room, new Set());
      rooms.get(a.room)!.add(b.room);
    }
  }
  return new Map([...rooms].map(([room, to]) => [room, [...to].sort()]));
}

// ---------------------------------------------------------------------------------------------
// The findings, each as "rule from → to" so KNOWN_TODAY can name them.
// ---------------------------------------------------------------------------------------------

type Finding = { rule: "circle" | "floor" | "client"; from: string; to: string; detail: string };

export function findings(graph: Map<string, string[]>): Finding[] {
  const found: Finding[] = [];
  // (a) Circles of files, and circles of rooms on one floor (circles across floors are also
  // upward imports, reported below). A circle is named by its first two members.
  const describeCircle = ({ path, members }: { path: string[]; members: string[] }) =>
    path.join(" → ") + (members.length > path.length - 1 ? `; the whole circle: ${members.join(", ")}` : "");
  for (const circle of circles(graph)) {
    found.push({ rule: "circle", from: circle.path[0]!, to: circle.path[1]!, detail: describeCircle(circle) });
  }
  FLOORS.forEach((_, floor) => {
    for (const circle of circles(roomGraph(graph, floor))) {
      if (circle.members.every((room) => !room.endsWith("/"))) continue; // rooms of one file: a file circle, reported above
      found.push({
        rule: "circle",
        from: circle.path[0]!,
        to: circle.path[1]!,
        detail: `rooms ${describeCircle(circle)}`,
      });
    }
  });
  for (const [from, targets] of graph) {
    const a = placeOf(from);
    for (const to of targets) {
      const b = placeOf(to);
      // (b) Upward imports.
      if (a && b && b.floor < a.floor) {
        found.push({ rule: "floor", from, to, detail: `${FLOORS[a.floor]!.floor} imports ${FLOORS[b.floor]!.floor}` });
      }
      // (c) Client-side files reaching past the shared contract.
      if (
        CLIENT_SIDE.some((p) => matches(from, p)) &&
        !CLIENT_SIDE.some((p) => matches(to, p)) &&
        !CLIENT_MAY_IMPORT.some((p) => matches(to, p))
      ) {
        found.push({ rule: "client", from, to, detail: "client side imports server code" });
      }
    }
  }
  return found;
}

const key = (f: { rule: string; from: string; to: string }) => `${f.rule} ${f.from} → ${f.to}`;

describe("the import graph of src/", () => {
  const graph = importGraph();
  const found = findings(graph);
  const known = new Set(KNOWN_TODAY.map(key));

  test("every file of src/ has a place in FLOORS", () => {
    expect([...graph.keys()].filter((file) => !placeOf(file))).toEqual([]);
  });

  test("no import circles, no import from a lower floor to a higher one, the client side imports only the contract", () => {
    const unexpected = found.filter((f) => !known.has(key(f))).map((f) => `${key(f)}  (${f.detail})`);
    expect(unexpected).toEqual([]);
  });

  test("every entry of KNOWN_TODAY still occurs (delete the entries the merged work removed)", () => {
    const occurring = new Set(found.map(key));
    expect(KNOWN_TODAY.filter((k) => !occurring.has(key(k))).map(key)).toEqual([]);
  });
});

describe("the checker itself", () => {
  test("finds a circle, an upward import and a client-side import of server code", () => {
    const graph = new Map<string, string[]>([
      ["api/app.ts", ["api/routes/docs.ts"]],
      ["api/routes/docs.ts", ["api/app.ts"]],
      ["db/open.ts", ["builds/service.ts"]],
      ["builds/service.ts", []],
      ["api-client/index.ts", ["auth/policy.ts", "wire/depot.ts", "errors.ts"]],
      ["auth/policy.ts", []],
      ["wire/depot.ts", []],
      ["errors.ts", []],
    ]);
    expect(findings(graph).map(key).sort()).toEqual([
      "circle api/app.ts → api/routes/docs.ts",
      "client api-client/index.ts → auth/policy.ts",
      "floor api-client/index.ts → auth/policy.ts",
      "floor db/open.ts → builds/service.ts",
    ]);
  });

  test("finds a circle of rooms on one floor even when no two files import each other", () => {
    const graph = new Map<string, string[]>([
      ["orgs/service.ts", ["projects/service.ts"]],
      ["projects/service.ts", []],
      ["projects/quota.ts", ["orgs/quotas.ts"]],
      ["orgs/quotas.ts", []],
    ]);
    expect(findings(graph).map((f) => f.detail)).toEqual(["rooms orgs/ → projects/ → orgs/"]);
  });
});

describe("host programs", () => {
  test("only src/host starts processes (Bun.spawn, node:child_process)", () => {
    const spawning = sourceFiles(SRC)
      .filter((file) =>
        /\bBun\.spawn(Sync)?\(|["']node:child_process["']|["']child_process["']/.test(readFileSync(file, "utf8")),
      )
      .map((file) => relative(SRC, file))
      .filter((file) => !file.startsWith(HOST_ROOM));
    expect(spawning).toEqual(SPAWNS_OUTSIDE_HOST.map((s) => s.file).sort());
  });
});

describe("the web UI (web/src)", () => {
  const WEB = join(ROOT, "web", "src");
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? files(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : [],
    );
  test("takes only the API's models from src/, and only their types (nothing of the server in the bundle)", () => {
    const wrong: string[] = [];
    for (const file of files(WEB)) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+"([^"]+)"/gms)) {
        const target = resolve(dirname(file), m[2]!);
        if (!target.startsWith(SRC)) continue;
        if (!m[1] || !/\/models\.ts$/.test(target)) wrong.push(`${relative(ROOT, file)} → ${relative(ROOT, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
  test("every file opens with a /** @module header", () => {
    const missing = files(WEB)
      .filter((file) => !/^\/\*\*\s*\n\s*\*\s*@module\s/.test(readFileSync(file, "utf8")))
      .map((file) => relative(ROOT, file));
    expect(missing).toEqual([]);
  });
});

describe("module headers", () => {
  test("every file of src/ opens with a /** @module header (generated code aside)", () => {
    const missing = sourceFiles(SRC)
      .filter((file) => !/^\/\/ @generated\b/m.test(readFileSync(file, "utf8").split("\n").slice(0, 12).join("\n")))
      .filter((file) => !/^\/\*\*\s*\n\s*\*\s*@module\s/.test(readFileSync(file, "utf8")))
      .map((file) => relative(ROOT, file));
    expect(missing).toEqual([]);
  });
});

describe("citations", () => {
  test("every Markdown file that src/, test/, README.md or ARCHITECTURE.md names exists in the repository", () => {
    const files = [
      ...sourceFiles(SRC, true),
      ...sourceFiles(join(ROOT, "test"), true),
      join(ROOT, "README.md"),
      join(ROOT, "ARCHITECTURE.md"),
    ];
    const missing = new Set<string>();
    for (const file of files) {
      for (const [cited] of readFileSync(file, "utf8").matchAll(/[\w./-]*\w\.md(?![\w.])/g)) {
        const bare = cited.replace(/^(\.\.?\/)+/, "");
        if (!existsSync(join(ROOT, bare)) && !existsSync(resolve(dirname(file), cited)))
          missing.add(`${relative(ROOT, file)}: ${cited}`);
      }
    }
    expect([...missing]).toEqual([]);
  });
});
