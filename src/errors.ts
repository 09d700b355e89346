/**
 * @module errors
 * Typed errors that services throw. They carry no HTTP knowledge: the API maps them to
 * problem+json in one place (src/api/problem.ts), the CLI maps them to exit codes.
 */

/** Base of every expected failure: its message is safe to show to the caller. */
export class SlipwayError extends Error {
  override name = "SlipwayError";
  constructor(
    message: string,
    /** Extra machine-readable detail, safe to show (never secrets). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** The input is malformed or violates a rule; `errors` points at the offending fields. */
export class InvalidInputError extends SlipwayError {
  override name = "InvalidInputError";
  constructor(
    message: string,
    readonly errors: { pointer: string; detail: string }[] = [],
  ) {
    super(message);
  }
}

export class NotFoundError extends SlipwayError {
  override name = "NotFoundError";
}

export class ConflictError extends SlipwayError {
  override name = "ConflictError";
}

export class UnauthenticatedError extends SlipwayError {
  override name = "UnauthenticatedError";
}

export class ForbiddenError extends SlipwayError {
  override name = "ForbiddenError";
}

export class PayloadTooLargeError extends SlipwayError {
  override name = "PayloadTooLargeError";
}

/**
 * A per-organization quota (set by the administrator) would be exceeded. Names the quota, its
 * limit and the current value, so the caller knows what to change or whom to ask.
 */
export class QuotaExceededError extends SlipwayError {
  override name = "QuotaExceededError";
  constructor(
    message: string,
    readonly quota: string,
    readonly limit: number,
    readonly current: number,
  ) {
    super(message, { quota, limit, current });
  }
}

/** The host has no room now (every builder slot taken) and waiting longer did not help. */
export class ResourceExhaustedError extends SlipwayError {
  override name = "ResourceExhaustedError";
}

/** A precondition about the host or the stored state does not hold (e.g. database too new). */
export class PreconditionError extends SlipwayError {
  override name = "PreconditionError";
}

/** The server cannot take this now (it is shutting down); the same call may work later or elsewhere. */
export class UnavailableError extends SlipwayError {
  override name = "UnavailableError";
}

/** A configuration value is wrong; the message names the key, the value and what is allowed. */
export class ConfigError extends SlipwayError {
  override name = "ConfigError";
}

/** Command-line usage is wrong (unknown flag, missing argument). */
export class UsageError extends SlipwayError {
  override name = "UsageError";
}
