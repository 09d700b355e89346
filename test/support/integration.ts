/**
 * @module test/support/integration
 * Suites that need something a developer laptop may lack (Docker, iptables, ...). Locally they
 * skip with a printed reason; in CI (SLIPWAY_REQUIRE_INTEGRATION=1) a missing prerequisite is a
 * failing test instead, so CI can never pass with an integration suite silently skipped.
 */
import { describe, test } from "bun:test";

export const REQUIRE_INTEGRATION = process.env.SLIPWAY_REQUIRE_INTEGRATION === "1";

/** `missing` is null when the suite can run, or says what is missing. */
export function integrationSuite(name: string, missing: string | null, body: () => void): void {
  if (!missing) {
    describe(name, body);
    return;
  }
  if (REQUIRE_INTEGRATION) {
    describe(name, () => {
      test(`prerequisite: ${missing}`, () => {
        throw new Error(`${name} cannot run: ${missing}; CI must provide it (.ci/run installs it)`);
      });
    });
    return;
  }
  console.warn(`[skip] ${name}: ${missing} (set up by .ci/run; required in CI)`);
  // Skipped only on machines without the prerequisite, never in CI (see above).
  describe.skip(name, body);
}
