/**
 * @module wire/json
 * Connect's JSON codec: proto3's canonical JSON mapping for our descriptors — lowerCamelCase
 * names (the original snake_case names are accepted on input), 64-bit integers as strings, bytes
 * as base64, Timestamps as RFC 3339, enums as numbers (names accepted on input), Empty as {}.
 */
import { DECODE_LIMITS, ProtoError, ProtoLimitError, type Field, type MessageType, type Msg, type Scalar } from "./proto.ts";

/** Enum value names accepted on input (e.g. BUILDER_PLATFORM_AMD64 → 1). */
const ENUM_NAMES: Record<string, number> = {};
export function registerEnum(prefix: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) ENUM_NAMES[`${prefix}${k}`] = v;
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function scalarToJson(type: Scalar, v: unknown): unknown {
  switch (type) {
    case "bytes":
      return Buffer.from(v as Uint8Array).toString("base64");
    case "int64":
    case "uint64":
      return String(v);
    default:
      return v;
  }
}

export function toJson(type: MessageType, msg: Msg): Record<string, unknown> {
  if (type.name === "google.protobuf.Timestamp") throw new Error("toJson: a Timestamp is not a message object");
  const out: Record<string, unknown> = {};
  for (const f of type.fields()) {
    const v = msg[f.name];
    if (v === undefined || v === null) continue;
    const t = f.type;
    if (typeof t !== "string" && t.kind === "map") {
      if (Object.keys(v as object).length) out[f.name] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, scalarToJson(t.value, x)]));
    } else if (typeof t !== "string") {
      const one = (m: Msg) => (t.name === "google.protobuf.Timestamp" ? timestampToJson(m) : toJson(t, m));
      if (f.repeated) {
        if ((v as Msg[]).length) out[f.name] = (v as Msg[]).map(one);
      } else out[f.name] = one(v as Msg);
    } else if (f.repeated) {
      if ((v as unknown[]).length) out[f.name] = (v as unknown[]).map((x) => scalarToJson(t, x));
    } else if (f.optional || f.oneof || !(v === "" || v === false || v === 0 || v === 0n || (t === "bytes" && (v as Uint8Array).length === 0))) {
      out[f.name] = scalarToJson(t, v);
    }
  }
  return out;
}

function timestampToJson(m: Msg): string {
  const ms = Number(m.seconds as bigint) * 1000 + Math.floor(Number(m.nanos ?? 0) / 1e6);
  return new Date(ms).toISOString();
}

function timestampFromJson(v: unknown, path: string): Msg {
  if (typeof v !== "string" || Number.isNaN(Date.parse(v))) throw new ProtoError(`${path}: expected an RFC 3339 timestamp`);
  const ms = Date.parse(v);
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (((ms % 1000) + 1000) % 1000) * 1e6 };
}

function scalarFromJson(type: Scalar, v: unknown, path: string): unknown {
  const bad = (what: string) => new ProtoError(`${path}: expected ${what}`);
  switch (type) {
    case "string":
      if (typeof v !== "string") throw bad("a string");
      return v;
    case "bytes":
      if (typeof v !== "string") throw bad("base64 bytes");
      return new Uint8Array(Buffer.from(v, "base64"));
    case "bool":
      if (typeof v !== "boolean") throw bad("true or false");
      return v;
    case "enum":
      if (typeof v === "string" && v in ENUM_NAMES) return ENUM_NAMES[v];
      if (typeof v === "number" && Number.isInteger(v)) return v;
      throw bad("an enum value");
    case "int32":
    case "uint32":
    case "double": {
      const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
      if (typeof n !== "number" || !Number.isFinite(n) || (type !== "double" && !Number.isInteger(n))) throw bad("a number");
      if (type === "int32" && (n < -(2 ** 31) || n >= 2 ** 31)) throw bad("a 32-bit integer");
      if (type === "uint32" && (n < 0 || n >= 2 ** 32)) throw bad("an unsigned 32-bit integer");
      return n;
    }
    case "int64":
    case "uint64":
      try {
        if (typeof v !== "string" && typeof v !== "number") throw new Error();
        return BigInt(v);
      } catch {
        throw bad("an integer");
      }
  }
}

/** A JSON body as a message, within the proto decoder's limits (wire/proto DECODE_LIMITS). */
export function fromJson(type: MessageType, json: unknown): Msg {
  return fromJsonWithin(type, json, "", 0, { left: DECODE_LIMITS.elements });
}

function fromJsonWithin(type: MessageType, json: unknown, path: string, depth: number, budget: { left: number }): Msg {
  if (depth > DECODE_LIMITS.depth) throw new ProtoLimitError(`${path}: messages nested more than ${DECODE_LIMITS.depth} deep`);
  /** Refuses a field of more than `n` elements, or a body whose elements exceed the budget. */
  const count = (p: string, n: number) => {
    if (n > DECODE_LIMITS.repeated) throw new ProtoLimitError(`${p}: more than ${DECODE_LIMITS.repeated} elements`);
    budget.left -= n;
    if (budget.left < 0) throw new ProtoLimitError(`${p}: the message has more than ${DECODE_LIMITS.elements} elements in all`);
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ProtoError(`${path || "body"}: expected a JSON object`);
  const fields = type.fields();
  const byName = new Map<string, Field>();
  for (const f of fields) (byName.set(f.name, f), byName.set(snake(f.name), f));
  const out: Msg = {};
  for (const f of fields) out[f.name] = f.repeated ? [] : typeof f.type !== "string" && f.type.kind === "map" ? {} : undefined;
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    const f = byName.get(k);
    const p = `${path}/${k}`;
    if (!f) throw new ProtoError(`${p}: unknown field`);
    if (v === null) continue;
    const t = f.type;
    if (typeof t !== "string" && t.kind === "map") {
      if (typeof v !== "object" || Array.isArray(v)) throw new ProtoError(`${p}: expected an object`);
      count(p, Object.keys(v as object).length);
      out[f.name] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([mk, mv]) => [mk, scalarFromJson(t.value, mv, `${p}/${mk}`)]));
    } else if (typeof t !== "string") {
      const one = (x: unknown, pp: string) => (t.name === "google.protobuf.Timestamp" ? timestampFromJson(x, pp) : fromJsonWithin(t, x, pp, depth + 1, budget));
      if (f.repeated) {
        if (!Array.isArray(v)) throw new ProtoError(`${p}: expected an array`);
        count(p, v.length);
        out[f.name] = v.map((x, i) => one(x, `${p}/${i}`));
      } else {
        count(p, 1);
        out[f.name] = one(v, p);
      }
    } else if (f.repeated) {
      if (!Array.isArray(v)) throw new ProtoError(`${p}: expected an array`);
      count(p, v.length);
      out[f.name] = v.map((x, i) => scalarFromJson(t, x, `${p}/${i}`));
    } else out[f.name] = scalarFromJson(t, v, p);
  }
  // Proto3 zero values for what was not sent (optional and oneof members stay absent).
  for (const f of fields) {
    if (out[f.name] !== undefined || f.optional || f.oneof || typeof f.type !== "string") continue;
    out[f.name] = f.type === "string" ? "" : f.type === "bool" ? false : f.type === "bytes" ? new Uint8Array(0) : f.type === "int64" || f.type === "uint64" ? 0n : 0;
  }
  return out;
}
