/**
 * @module host/run
 * The only place Slipway runs host programs. Commands are argv arrays handed straight to the
 * kernel (never a shell, so no quoting bugs or injection); secrets travel on stdin, never in argv
 * where /proc/<pid>/cmdline would show them to every local user.
 */

export interface RunOptions {
  /** Bytes or text written to the program's stdin, then closed. */
  stdin?: string | Uint8Array;
  /** Kill the program after this long (default 30 s). */
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** false: the program gets only PATH, LC_ALL and `env`, none of this process's environment. */
  inheritEnv?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Finds a program on PATH (and the sbin directories, which a non-root PATH may lack). */
export function which(program: string): string | null {
  const path = [process.env.PATH ?? "", "/usr/local/sbin", "/usr/sbin", "/sbin"].join(":");
  return Bun.which(program, { PATH: path });
}

/** Runs argv[0] with the rest as arguments. Never throws for a non-zero exit; check `code`. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new Error("run: empty argv");
  const exe = argv[0]!.includes("/") ? argv[0]! : which(argv[0]!);
  if (!exe) return { code: 127, stdout: "", stderr: `${argv[0]}: not found`, timedOut: false };
  const proc = Bun.spawn([exe, ...argv.slice(1)], {
    stdin: opts.stdin === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...(opts.inheritEnv === false ? { PATH: process.env.PATH } : process.env), LC_ALL: "C", ...opts.env },
  });
  if (opts.stdin !== undefined && proc.stdin) {
    proc.stdin.write(opts.stdin);
    await proc.stdin.end();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr, timedOut };
}

export interface ServiceProcess {
  pid: number;
  /** Resolves with the exit code when the program ends. */
  exited: Promise<number>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts a long-running program (a supervised service); its stderr lines go to `onLine`. */
export function startService(
  argv: readonly string[],
  opts: { env?: Record<string, string | undefined>; inheritEnv?: boolean; onLine?: (line: string) => void } = {},
): ServiceProcess {
  if (argv.length === 0) throw new Error("startService: empty argv");
  const exe = argv[0]!.includes("/") ? argv[0]! : which(argv[0]!);
  if (!exe) throw new Error(`${argv[0]}: not found`);
  const proc = Bun.spawn([exe, ...argv.slice(1)], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
    env: { ...(opts.inheritEnv === false ? { PATH: process.env.PATH } : process.env), LC_ALL: "C", ...opts.env },
  });
  void (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stderr) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) if (l.trim()) opts.onLine?.(l);
    }
  })().catch(() => {});
  return { pid: proc.pid, exited: proc.exited, kill: (signal = "SIGTERM") => proc.kill(signal) };
}
