/**
 * @module router/errors
 * Why the build endpoint refused a connection. A refusal is expected traffic (a stale
 * certificate, a scanner), so it is a typed value with a short machine-readable reason that
 * labels a metric, not an exception that escapes the router.
 */
import { SlipwayError } from "../errors.ts";

export type RefusalReason =
  /** TLS failed: no/invalid/expired/untrusted certificate, wrong protocol, plain TCP. */
  | "tls"
  /** The TLS handshake (or routing after it) did not finish within handshakeTimeoutMs. */
  | "handshake_timeout"
  /** The certificate chains to the root but was not issued by a build-client intermediate. */
  | "wrong_issuer"
  /** The certificate lacks the clientAuth extended key usage, or is not currently valid. */
  | "bad_certificate"
  /** No active build (or no ready builder) for this certificate's serial. */
  | "no_build"
  /** The build has ended; its certificates open nothing any more. */
  | "build_ended"
  | "too_many_connections"
  /** The builder's socket could not be reached, or dockerd refused the /grpc upgrade. */
  | "builder_unavailable"
  | "stopping";

export class ConnectionRefused extends SlipwayError {
  override name = "ConnectionRefused";
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message, { reason });
  }
}
