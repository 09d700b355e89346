/**
 * @module test/support/egress/containers
 * Real containers for the egress tests' docker scopes, and the one destination they try:
 *  - a busybox image made here (`docker import` of Debian's static busybox: nothing can be pulled),
 *  - containers dockerd runs on a network, labelled for cleanup,
 *  - an HTTP request from inside a container (busybox nc; its static wget crashes),
 *  - a listener in a network namespace this module creates, joined to the host by a veth pair and
 *    answering with its name on port 80: the only address the tests' policies deny.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { Subprocess } from "bun";
import type Docker from "dockerode";
import { run } from "../../../src/host/run.ts";
import { busyboxPath, writeBusyboxContext } from "../builder-image.ts";
import { lines } from "./topology.ts";

export const TEST_LABEL = "io.slipway.test";

async function sh(argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** The busybox image's reference (imported once per busybox binary; later calls reuse it). */
export async function ensureBusyboxImage(docker: Docker): Promise<string> {
  const st = statSync(busyboxPath());
  const ref = `slipway-test/egress-busybox:${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}`;
  if (
    await docker
      .getImage(ref)
      .inspect()
      .then(
        () => true,
        () => false,
      )
  )
    return ref;
  const work = mkdtempSync(join(tmpdir(), "slipway-egress-image-"));
  try {
    writeBusyboxContext(join(work, "root"), "");
    await sh(["tar", "-C", join(work, "root"), "-cf", join(work, "root.tar"), "busybox"]);
    const [repo, tag] = ref.split(":");
    const stream = await docker.importImage(join(work, "root.tar"), { repo, tag } as Record<string, unknown>);
    await new Promise((resolve, reject) =>
      docker.modem.followProgress(stream, (e: Error | null) => (e ? reject(e) : resolve(null))),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return ref;
}

/** Starts a container on `network` that idles until removed; returns its id and address. */
export async function runContainer(
  docker: Docker,
  image: string,
  network: string,
  name: string,
): Promise<{ id: string; addr: string }> {
  const c = await docker.createContainer({
    name,
    Image: image,
    Cmd: ["/busybox", "sleep", "100000"],
    Labels: { [TEST_LABEL]: "egress" },
    HostConfig: { NetworkMode: network, AutoRemove: false },
  });
  await c.start();
  const info = (await c.inspect()) as { NetworkSettings: { Networks: Record<string, { IPAddress: string }> } };
  return { id: c.id, addr: info.NetworkSettings.Networks[network]!.IPAddress };
}

/** GET / on `addr`:80 from inside the container: the body, or null when the connection failed. */
export async function httpFrom(docker: Docker, container: string, addr: string): Promise<string | null> {
  const exec = await docker.getContainer(container).exec({
    Cmd: ["/busybox", "sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /busybox nc -w 20 ${addr} 80`],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  let text = "";
  out.on("data", (d: Buffer) => (text += d.toString()));
  docker.modem.demuxStream(stream, out, new PassThrough());
  await new Promise<void>((resolve) => (stream.on("end", resolve), stream.on("close", resolve)));
  const { ExitCode } = await exec.inspect();
  const i = text.indexOf("\r\n\r\n");
  return ExitCode === 0 && text.startsWith("HTTP/1.1 200") && i >= 0 ? text.slice(i + 4) : null;
}

export interface Listener {
  /** The listener's address (in its namespace). */
  addr: string;
  destroy(): Promise<void>;
}

/** An HTTP listener answering `name` in a namespace of its own, at 10.215.X.2 (X from `id`). */
export async function makeListener(id: string, name: string): Promise<Listener> {
  const ns = `slw${id}ls`;
  const link = `slw${id}l`;
  const octet = parseInt(id.slice(0, 2), 16);
  const [hostSide, addr] = [`10.215.${octet}.1`, `10.215.${octet}.2`];
  let server: Subprocess | null = null;
  const destroy = async () => {
    server?.kill("SIGKILL");
    await server?.exited;
    await run(["ip", "link", "del", link]);
    await run(["ip", "netns", "del", ns]);
  };
  try {
    await sh(["ip", "netns", "add", ns]);
    await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    await sh(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await sh(["ip", "addr", "add", `${hostSide}/30`, "dev", link]);
    await sh(["ip", "link", "set", link, "up"]);
    await sh(["ip", "-n", ns, "addr", "add", `${addr}/30`, "dev", "eth0"]);
    await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    await sh(["ip", "-n", ns, "route", "add", "default", "via", hostSide]);
    server = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, join(import.meta.dir, "http-server.ts"), name], {
      stdout: "pipe",
      stderr: "ignore",
    });
    await lines(server).next("ready");
  } catch (e) {
    await destroy();
    throw e;
  }
  return { addr, destroy };
}

/** Removes every container this module started (whatever the test's outcome). */
export async function removeTestContainers(docker: Docker, ids: string[]): Promise<void> {
  for (const id of ids)
    await docker
      .getContainer(id)
      .remove({ force: true })
      .catch(() => {});
}
