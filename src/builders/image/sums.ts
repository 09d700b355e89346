/**
 * @module builders/image/sums
 * Checks an image tarball against a `sha256sum`-format SHA256SUMS file before anything is loaded
 * into Docker: air-gapped sites carry the offline bundle across on removable media, and an image
 * that becomes every builder must be the one that was packed. The file is hashed as a stream
 * (the builder image is 100+ MB; nothing is read whole into memory).
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InvalidInputError, NotFoundError } from "../../errors.ts";

/** The name `sha256sum` and the offline bundle give the sums file. */
export const SUMS_FILE_NAME = "SHA256SUMS";

/** The hex SHA-256 of a file, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * `sha256sum` output → file name → hex digest. Accepts text (`HASH  NAME`) and binary
 * (`HASH *NAME`) lines and a leading `./`; blank lines and `#` comments are skipped; anything
 * else is refused, so a garbled file never passes as one that merely lacks the line.
 */
export function parseSums(text: string, source: string): Map<string, string> {
  const sums = new Map<string, string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.startsWith("#")) return;
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (!m)
      throw new InvalidInputError(`${source} line ${i + 1} is not 'SHA256  FILE' (sha256sum format)`, [
        { pointer: "/sums", detail: "not sha256sum format" },
      ]);
    sums.set(m[2]!.replace(/^\.\//, ""), m[1]!.toLowerCase());
  });
  return sums;
}

/** The SHA256SUMS that sits beside `file`, or null. */
export function sumsBeside(file: string): string | null {
  const p = join(dirname(file), SUMS_FILE_NAME);
  return existsSync(p) ? p : null;
}

export interface VerifiedFile {
  file: string;
  sums: string;
  sha256: string;
}

/**
 * Succeeds only when `sumsPath` has a line for `file`'s name and the file's SHA-256 equals it;
 * a missing line or a different digest is an InvalidInputError naming both files.
 */
export async function verifyAgainstSums(file: string, sumsPath: string): Promise<VerifiedFile> {
  if (!existsSync(sumsPath)) throw new NotFoundError(`no such sums file: ${sumsPath}`);
  if (!existsSync(file)) throw new NotFoundError(`no such file: ${file}`);
  const name = basename(file);
  const expected = parseSums(readFileSync(sumsPath, "utf8"), sumsPath).get(name);
  if (!expected)
    throw new InvalidInputError(`${sumsPath} has no line for ${name}: cannot verify it, so nothing was loaded`, [
      { pointer: "/sums", detail: "no line for the file" },
    ]);
  const actual = await sha256File(file);
  if (actual !== expected)
    throw new InvalidInputError(
      `${name} does not match ${sumsPath} (sha256 ${actual}, expected ${expected}): the file is damaged or altered, so nothing was loaded`,
      [{ pointer: "/file", detail: "checksum mismatch" }],
    );
  return { file, sums: sumsPath, sha256: actual };
}
