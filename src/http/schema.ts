/**
 * @module http/schema
 * Schema pieces the request models of every feature (its models.ts) share. Elysia's `t.Integer`
 * accepts a numeric string in a JSON body and converts it ("4" becomes 4); a body is JSON, so a
 * string where a number belongs is refused.
 */
import { t } from "elysia";

type NumberOptions = Parameters<typeof t.Number>[0];

/** A whole number in a JSON body: a JSON number, never a string that looks like one. */
export const BodyInteger = (options: NumberOptions = {}) => t.Number({ ...options, multipleOf: 1 });
