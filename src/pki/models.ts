/**
 * @module pki/models
 * The certificate authorities as the administrator sees them (GET /admin/ca): certificates'
 * names, fingerprints and validity, never a key. Imports no service.
 */
import { t, type Static } from "elysia";

export const CertificateAuthority = t.Object({
  id: t.String(),
  purpose: t.Union([t.Literal("root"), t.Literal("server"), t.Literal("build-client")]),
  parent_id: t.Nullable(t.String()),
  serial: t.String(),
  subject: t.String(),
  fingerprint_sha256: t.String({ description: "SHA-256 of the certificate (DER), colon-separated hex" }),
  not_before: t.String(),
  not_after: t.String(),
  retired_at: t.Nullable(t.String({ description: "replaced by a newer CA; still trusted until it expires" })),
  days_left: t.Integer({ description: "whole days until not_after (negative: expired)" }),
});
export const CertificateAuthorities = t.Array(CertificateAuthority);
export type CertificateAuthorityView = Static<typeof CertificateAuthority>;
