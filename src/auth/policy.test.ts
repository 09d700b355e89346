/**
 * @module auth/policy.test
 * Pins every decision of the authorization policy: a table of actors × actions → can(), and the
 * errors authorize() throws (401-style for anonymous, 403-style for a user lacking the right).
 */
import { describe, expect, test } from "bun:test";
import { ForbiddenError, UnauthenticatedError } from "../errors.ts";
import type { Actor } from "./authenticate.ts";
import { authorize, can, type Action } from "./policy.ts";

const anonymous: Actor = { kind: "anonymous" };
const user: Actor = { kind: "user", userId: "usr_1", username: "bob", isAdmin: false, tokenId: "tok_1" };
const admin: Actor = { kind: "user", userId: "usr_2", username: "admin", isAdmin: true, tokenId: "tok_2" };

const table: [string, Actor, Action, boolean][] = [
  ["anonymous", anonymous, "self:read", false],
  ["anonymous", anonymous, "appliance:read", false],
  ["user", user, "self:read", true],
  ["user", user, "appliance:read", false],
  ["admin", admin, "self:read", true],
  ["admin", admin, "appliance:read", true],
];

describe("can", () => {
  for (const [name, actor, action, expected] of table) {
    test(`${name} ${expected ? "may" : "may not"} ${action}`, () => {
      expect(can(actor, action)).toBe(expected);
    });
  }
});

describe("authorize", () => {
  test("passes silently exactly where can() is true", () => {
    for (const [, actor, action, expected] of table) {
      if (expected) expect(() => authorize(actor, action)).not.toThrow();
      else expect(() => authorize(actor, action)).toThrow();
    }
  });

  test("anonymous gets UnauthenticatedError, for every action", () => {
    for (const action of ["self:read", "appliance:read"] as const) {
      expect(() => authorize(anonymous, action)).toThrow(UnauthenticatedError);
      expect(() => authorize(anonymous, action)).not.toThrow(ForbiddenError);
    }
  });

  test("a user lacking the right gets ForbiddenError naming the action", () => {
    let err: unknown;
    try {
      authorize(user, "appliance:read");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ForbiddenError);
    expect(err).not.toBeInstanceOf(UnauthenticatedError);
    expect((err as Error).message).toContain("appliance:read");
  });
});
