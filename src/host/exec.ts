/**
 * @module host/exec
 * A host command runner that can be pointed into a network namespace: what the egress agent and
 * the builders' network policy take as a dependency, so tests run them inside a namespace of
 * their own (`ip netns exec NAME argv…`, still argv arrays and no shell, through ./run.ts).
 */
import { run, type RunOptions, type RunResult } from "./run.ts";

export type HostExec = (argv: string[], opts?: RunOptions) => Promise<RunResult>;

/** Runs host commands, inside `netns` when given (`ip netns exec NAME argv…`, still no shell). */
export function hostExec(netns?: string): HostExec {
  return (argv, opts) => run(netns ? ["ip", "netns", "exec", netns, ...argv] : argv, opts);
}
