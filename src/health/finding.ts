/**
 * @module health/finding
 * One finding of `slipway doctor`: a check's verdict on this host and, when it is not ok, the fix.
 * Here, below the capabilities, so that each capability (builders, volumes) words its own
 * findings and the doctor, above them all, only gathers them.
 */

/** `fail`: serve cannot start; `warn`: a capability will be off. */
export type Severity = "ok" | "warn" | "fail";

export interface Finding {
  check: string;
  status: Severity;
  message: string;
  fix?: string;
}
