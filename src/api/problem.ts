/**
 * @module api/problem
 * The one place errors become HTTP: RFC 9457 problem+json with a stable `type`, a human `title`
 * and `detail`, the request id, and field errors for bad input. Unexpected errors become a bare
 * 500 whose detail says only where to look (the request id in the server log), never a stack.
 */
import { ValidationError } from "elysia";
import { DeviceLoginGoneError } from "../auth/device-login.ts";
import { RateLimitedError } from "../auth/rate-limit.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionError,
  QuotaExceededError,
  ResourceExhaustedError,
  SlipwayError,
  UnauthenticatedError,
  UnavailableError,
} from "../errors.ts";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  request_id?: string;
  errors?: { pointer: string; detail: string }[];
  /** A quota refusal: which quota, its limit, and the value now (RFC 9457 extension members). */
  quota?: string;
  limit?: number;
  current?: number;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

const problemType = (slug: string) => `urn:slipway:problem:${slug}`;

const TYPED: [new (...a: never[]) => SlipwayError, number, string, string][] = [
  [InvalidInputError, 400, "invalid-input", "Invalid input"],
  [UnauthenticatedError, 401, "unauthenticated", "Authentication required"],
  [ForbiddenError, 403, "forbidden", "Forbidden"],
  [QuotaExceededError, 403, "quota-exceeded", "Quota exceeded"],
  [NotFoundError, 404, "not-found", "Not found"],
  [ConflictError, 409, "conflict", "Conflict"],
  [DeviceLoginGoneError, 410, "gone", "Gone"],
  [PayloadTooLargeError, 413, "payload-too-large", "Request body too large"],
  [RateLimitedError, 429, "rate-limited", "Too many requests"],
  [ResourceExhaustedError, 429, "resource-exhausted", "No capacity left"],
  [PreconditionError, 503, "unavailable", "Service unavailable"],
  [UnavailableError, 503, "unavailable", "Service unavailable"],
];

/** What the caller sees for `error`; `unexpected` says the server should log it loudly. */
export function toProblem(error: unknown, elysiaCode?: string | number): { problem: Problem; unexpected: boolean } {
  // Elysia wraps whatever a body parser throws in a ParseError; ours are typed, so unwrap them.
  if (elysiaCode === "PARSE" && error instanceof Error && error.cause instanceof SlipwayError) error = error.cause;
  for (const [cls, status, slug, title] of TYPED) {
    if (error instanceof cls) {
      const p: Problem = { type: problemType(slug), title, status, detail: error.message };
      if (error instanceof InvalidInputError && error.errors.length) p.errors = error.errors;
      if (error instanceof QuotaExceededError)
        Object.assign(p, { quota: error.quota, limit: error.limit, current: error.current });
      return { problem: p, unexpected: false };
    }
  }
  if (error instanceof ValidationError) {
    const errors = validationErrors(error);
    return {
      problem: {
        type: problemType("invalid-input"),
        title: "Invalid input",
        status: 400,
        detail: `the request ${error.type} is invalid${errors[0] ? `: ${errors[0].pointer || "(root)"} ${errors[0].detail}` : ""}`,
        errors,
      },
      unexpected: false,
    };
  }
  if (elysiaCode === "NOT_FOUND") {
    return {
      problem: { type: problemType("not-found"), title: "Not found", status: 404, detail: "no such resource or route" },
      unexpected: false,
    };
  }
  if (elysiaCode === "PARSE") {
    return {
      problem: {
        type: problemType("invalid-input"),
        title: "Invalid input",
        status: 400,
        detail: "the request body could not be parsed",
      },
      unexpected: false,
    };
  }
  return {
    problem: {
      type: problemType("internal"),
      title: "Internal error",
      status: 500,
      detail: "the server failed to handle this request; its log has the details under this request id",
    },
    unexpected: true,
  };
}

function validationErrors(error: ValidationError): { pointer: string; detail: string }[] {
  try {
    return error.all.slice(0, 20).map((e) => ({
      pointer: "path" in e && typeof e.path === "string" ? e.path : "",
      detail: e.summary ?? ("message" in e ? String(e.message) : "is invalid"),
    }));
  } catch {
    return [];
  }
}
