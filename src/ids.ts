/**
 * @module ids
 * Resource ids: a short type prefix and 20 random base32 characters (100 bits), so ids are
 * unguessable, URL-safe, and say what they name in logs.
 */
const B32 = "abcdefghijklmnopqrstuvwxyz234567";

export function newId(prefix: string): string {
  let s = "";
  for (const b of crypto.getRandomValues(new Uint8Array(20))) s += B32[b & 31];
  return `${prefix}_${s}`;
}
