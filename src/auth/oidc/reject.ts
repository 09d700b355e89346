/**
 * @module auth/oidc/reject
 * The one way this folder refuses a CI token: an UnauthenticatedError whose message is a short,
 * stable, machine-friendly reason ("oidc: token expired"). The caller answers 401 and writes the
 * reason into the audit record, so reasons must never carry the token or secrets — only fixed
 * text, or a sanitized, truncated fragment of an untrusted header value.
 */
import { UnauthenticatedError } from "../../errors.ts";

export function reject(reason: string): never {
  throw new UnauthenticatedError(reason, { reason });
}

/** Attacker-controlled text shown in a reason: printable ASCII only, at most 32 characters. */
export function sanitizeForReason(value: unknown): string {
  const s = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  const clean = s.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 32 ? `${clean.slice(0, 32)}...` : clean;
}
