/**
 * @module builders/emulation.test
 * Reading binfmt_misc: the handler files are written as the kernel formats them, into a
 * directory the test owns (registering a handler for real needs root and changes the host).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binfmtHandler, describeEmulation, emulationProblem, emulationStatus } from "./emulation.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function binfmt(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), "binfmt-"));
  dirs.push(d);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}
const handler = (state: string, flags: string) =>
  `${state}\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: ${flags}\noffset 0\nmagic 7f454c46\nmask ffffffff\n`;

describe("qemu binfmt handlers", () => {
  test("registered, enabled, fix-binary: available", () => {
    const d = binfmt({ status: "enabled\n", "qemu-aarch64": handler("enabled", "POF") });
    expect(binfmtHandler("linux/arm64", d)).toEqual({
      name: "qemu-aarch64",
      registered: true,
      enabled: true,
      fixBinary: true,
      interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
    });
    expect(emulationProblem("linux/arm64", d)).toBeNull();
    expect(describeEmulation(emulationStatus("linux/arm64", true, d))).toEqual({
      status: "ok",
      message: expect.stringContaining("and enabled (builders.allow_emulation = true)"),
    });
    expect(describeEmulation(emulationStatus("linux/arm64", false, d)).message).toContain(
      "not enabled (builders.allow_emulation = false",
    );
  });

  test("each missing piece is named with its fix", () => {
    expect(emulationProblem("linux/arm64", join(tmpdir(), "no-such-binfmt-dir"))).toContain(
      "binfmt_misc is not mounted",
    );
    expect(emulationProblem("linux/arm64", binfmt({ status: "enabled\n" }))).toContain(
      "qemu-aarch64 binfmt handler is not registered",
    );
    expect(emulationProblem("linux/arm64", binfmt({ status: "enabled\n" }))).toContain(
      "apt-get install qemu-user-static",
    );
    expect(
      emulationProblem("linux/arm64", binfmt({ status: "disabled\n", "qemu-aarch64": handler("enabled", "POF") })),
    ).toContain("binfmt_misc is disabled");
    expect(
      emulationProblem("linux/arm64", binfmt({ status: "enabled\n", "qemu-aarch64": handler("disabled", "POF") })),
    ).toContain("registered but disabled");
    // Without F the kernel looks the interpreter up in the builder container, where it is not.
    expect(
      emulationProblem("linux/arm64", binfmt({ status: "enabled\n", "qemu-aarch64": handler("enabled", "PO") })),
    ).toContain("fix-binary flag (F)");
    expect(
      emulationProblem("linux/amd64", binfmt({ status: "enabled\n", "qemu-aarch64": handler("enabled", "POF") })),
    ).toContain("qemu-x86_64");
  });

  test("allowed but unavailable is a warning that says builds will be refused", () => {
    const d = describeEmulation(emulationStatus("linux/arm64", true, binfmt({ status: "enabled\n" })));
    expect(d.status).toBe("warn");
    expect(d.message).toContain("will be refused");
    expect(d.fix).toBe("apt-get install qemu-user-static");
  });
});
