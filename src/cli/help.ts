/**
 * @module cli/help
 * The help text of the program and of each command, as one model rendered two ways: plain text
 * for `--help`, and roff for the man pages the .deb installs. Both come from the commands' own
 * `summary`, `usage` and `optionHelp`, so a page can never say something `--help` does not.
 */
import { VERSION } from "../version.ts";
import { GLOBAL_HELP, type Command } from "./command.ts";

export const EXIT_CODES_LINE = "Exit codes: 0 ok, 1 operation failed, 2 usage or configuration error.";

/** The program's help: every listed command with its summary, and the global options. */
export function topHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `slipway ${VERSION}: a self-hosted build appliance`,
    "",
    "usage: slipway <command> [options]",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "global options:",
    ...Object.entries(GLOBAL_HELP).map(([k, v]) => `  --${k.padEnd(10)} ${v}`),
    "",
    "Run 'slipway <command> --help' for a command's options.",
    EXIT_CODES_LINE,
  ].join("\n");
}

/** A command's options (its own, then the globals), as `--help` and the man page list them. */
export function commandOptions(c: Command): [flag: string, text: string][] {
  return Object.entries({ ...c.optionHelp, ...GLOBAL_HELP }).map(([k, v]) => {
    const short = c.options[k]?.short;
    return [short ? `--${k}, -${short}` : `--${k}`, v];
  });
}

export function commandHelp(c: Command): string {
  const all = { ...c.optionHelp, ...GLOBAL_HELP };
  const width = Math.max(...Object.keys(all).map((k) => k.length)) + 2;
  return [
    `slipway ${c.name}: ${c.summary}`,
    "",
    `usage: ${c.usage}`,
    "",
    "options:",
    ...Object.entries(all).map(([k, v]) => `  --${k.padEnd(width)} ${v}`),
  ].join("\n");
}

/**
 * Text for roff: a backslash doubled, every `-` escaped (an unescaped one is a hyphen that man
 * may break or turn into a typographic dash, so copied flags would not work), and a line that
 * would start with `.` or `'` (a roff request) guarded by `\&`.
 */
export function roffText(text: string): string {
  const escaped = text.replaceAll("\\", "\\e").replaceAll("-", "\\-");
  return escaped.replace(/^([.'])/gm, "\\&$1");
}

/** The date a page carries: the build's, from SOURCE_DATE_EPOCH when set (reproducible builds). */
function pageDate(epochSeconds?: number): string {
  const when = epochSeconds === undefined ? new Date() : new Date(epochSeconds * 1000);
  return when.toISOString().slice(0, 10);
}

const SEE_ALSO_ROOT = "slipway";

/**
 * The man pages: slipway(1) from the top help, and slipway-NAME(1) for each listed command.
 * Written as plain man(7) roff by hand: a few macros (.TH .SH .TP .nf) suffice, and no
 * converter (pandoc, help2man) is needed on the build host.
 */
export function manPages(commands: Command[], epochSeconds?: number): { name: string; roff: string }[] {
  const date = pageDate(epochSeconds);
  const header = (title: string) => `.TH ${title.toUpperCase()} 1 "${date}" "slipway ${VERSION}" "Slipway Manual"`;
  const options = (pairs: [string, string][]) =>
    pairs.flatMap(([flag, text]) => [".TP", `.B ${roffText(flag)}`, roffText(text)]);
  const top = [
    header(SEE_ALSO_ROOT),
    ".SH NAME",
    "slipway \\- a self\\-hosted build appliance",
    ".SH SYNOPSIS",
    ".B slipway",
    ".I command",
    "[\\fIoptions\\fR]",
    ".SH COMMANDS",
    ...commands.flatMap((c) => [".TP", `.BR slipway\\-${roffText(c.name)} (1)`, roffText(c.summary)]),
    ".SH GLOBAL OPTIONS",
    ...options(Object.entries(GLOBAL_HELP).map(([k, v]) => [`--${k}`, v])),
    ".SH EXIT STATUS",
    roffText(EXIT_CODES_LINE),
    ".SH SEE ALSO",
    commands.map((c) => `.BR slipway\\-${roffText(c.name)} (1)`).join(",\n"),
  ];
  const pages = [{ name: SEE_ALSO_ROOT, roff: `${top.join("\n")}\n` }];
  for (const c of commands) {
    const lines = [
      header(`slipway-${c.name}`),
      ".SH NAME",
      `slipway\\-${roffText(c.name)} \\- ${roffText(c.summary)}`,
      ".SH SYNOPSIS",
      ".nf",
      // The help aligns continuation lines under "usage: "; a page starts each at the margin.
      roffText(
        c.usage
          .split("\n")
          .map((l) => l.trim())
          .join("\n"),
      ),
      ".fi",
      ".SH OPTIONS",
      ...options(commandOptions(c)),
      ".SH EXIT STATUS",
      roffText(EXIT_CODES_LINE),
      ".SH SEE ALSO",
      `.BR ${SEE_ALSO_ROOT} (1)`,
    ];
    pages.push({ name: `slipway-${c.name}`, roff: `${lines.join("\n")}\n` });
  }
  return pages;
}
