/**
 * @module cli/completion.test
 * The completion scripts from the real command list: bash parses it and, in a real bash, the
 * function completes commands, subcommands and options; zsh and fish check the syntax of theirs
 * when the shells are installed. The man pages share the help model: each starts with .TH.
 */
import { describe, expect, test } from "bun:test";
import { COMMANDS, main } from "./index.ts";
import { completionScript, subcommandsOf } from "./completion.ts";
import { manPages, roffText } from "./help.ts";

function bash(script: string, body: string): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(["bash", "--norc", "--noprofile", "-c", `${script}\n${body}`], {
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** Completes `words` (the last is the word under the cursor) with the generated function. */
function complete(words: string[]): string[] {
  const quoted = words.map((w) => `'${w}'`).join(" ");
  const r = bash(
    completionScript("bash", COMMANDS),
    `COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _slipway; printf '%s\\n' "\${COMPREPLY[@]}"`,
  );
  expect(r.err).toBe("");
  return r.out.split("\n").filter(Boolean).sort();
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, {}, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`), isTTY: false });
  return { code, out, err };
}

describe("slipway completion", () => {
  test("bash: the script parses and registers the function", () => {
    const script = completionScript("bash", COMMANDS);
    const check = Bun.spawnSync(["bash", "-n"], { stdin: Buffer.from(script), stderr: "pipe" });
    expect(check.stderr.toString()).toBe("");
    expect(check.exitCode).toBe(0);
    expect(bash(script, "complete -p slipway").out.trim()).toBe("complete -o default -F _slipway slipway");
  });

  test("bash: commands, subcommands and options complete", () => {
    expect(complete(["slipway", "buil"])).toEqual(["build", "builder-image", "buildkit-env", "builds"]);
    expect(complete(["slipway", "builder-image", ""])).toEqual(["build", "import", "status"]);
    expect(complete(["slipway", "--server", "https://x", "egress", "--org", "o", "set-m"])).toEqual(["set-mode"]);
    expect(complete(["slipway", "build", "--pro"])).toEqual(["--progress", "--project"]);
    expect(complete(["slipway", "completion", ""])).toEqual(["bash", "fish", "zsh"]);
    // After a value-taking option, nothing of ours: bash falls back to file names (-o default).
    expect(complete(["slipway", "serve", "--config", ""])).toEqual([]);
  });

  test("every listed command is completed; hidden ones are not", () => {
    const all = complete(["slipway", ""]);
    expect(all).toEqual(COMMANDS.map((c) => c.name).sort());
    expect(all).not.toContain("volume-selftest");
  });

  test("subcommands come from the usage text", () => {
    const pki = COMMANDS.find((c) => c.name === "pki")!;
    expect(subcommandsOf(pki)).toEqual(["list", "rotate", "rotate-root"]);
    expect(subcommandsOf(COMMANDS.find((c) => c.name === "build")!)).toEqual([]);
  });

  for (const shell of ["zsh", "fish"] as const) {
    // Checked only where the shell is installed (CI installs neither; no skip is reported).
    const exe = Bun.which(shell);
    if (exe)
      test(`${shell}: the script parses`, () => {
        const r = Bun.spawnSync([exe, "-n"], { stdin: Buffer.from(completionScript(shell, COMMANDS)), stderr: "pipe" });
        expect(r.stderr.toString()).toBe("");
        expect(r.exitCode).toBe(0);
      });
  }

  test("an unknown or missing shell is a usage error (exit 2); the command is in the help", async () => {
    expect((await run(["completion", "tcsh"])).code).toBe(2);
    expect((await run(["completion"])).code).toBe(2);
    const ok = await run(["completion", "fish"]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("complete -c slipway");
    expect((await run(["--help"])).out).toMatch(/\n {2}completion +print a shell completion script/);
  });
});

describe("man pages", () => {
  test("one per listed command plus slipway(1), each with its options, dashes escaped", () => {
    const pages = manPages(COMMANDS, 0);
    expect(pages.map((p) => p.name).sort()).toEqual(["slipway", ...COMMANDS.map((c) => `slipway-${c.name}`)].sort());
    for (const p of pages) expect(p.roff.startsWith(".TH ")).toBe(true);
    const serve = pages.find((p) => p.name === "slipway-serve")!.roff;
    expect(serve).toContain(".B \\-\\-build\\-listen");
    expect(serve).not.toMatch(/[^\\]--/);
  });

  test("roff escaping: backslashes, dashes, and a leading dot", () => {
    expect(roffText("a\\b -x\n.TH")).toBe("a\\eb \\-x\n\\&.TH");
  });
});
