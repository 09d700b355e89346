/**
 * @module wire/proto
 * A small protobuf (proto3) codec driven by message descriptors, for the few dozen messages of
 * the depot wire contract and BuildKit's status messages. Unknown fields are skipped, as proto3
 * requires; scalars default to their zero values; `optional` fields are absent when not sent.
 */

export type Scalar = "string" | "bytes" | "bool" | "int32" | "int64" | "uint32" | "uint64" | "enum" | "double";
/** A field: number, name, type; `repeated`; `optional` (explicit presence); `oneof` group name. */
export interface Field {
  no: number;
  name: string;
  type: Scalar | MessageType | MapType;
  repeated?: boolean;
  optional?: boolean;
  oneof?: string;
}
export interface MessageType {
  kind: "message";
  name: string;
  fields: () => Field[];
}
export interface MapType {
  kind: "map";
  key: "string";
  value: Scalar;
}
/** Decoded messages are plain objects keyed by field name (camelCase as declared). */
export type Msg = Record<string, unknown>;

/** `fields` is a thunk so messages can refer to each other; it runs once, on first use. */
export const message = (name: string, fields: () => Field[]): MessageType => {
  let memo: Field[] | undefined;
  return { kind: "message", name, fields: () => (memo ??= fields()) };
};
export const map = (value: Scalar = "string"): MapType => ({ kind: "map", key: "string", value });

// ---- reading ----
export class ProtoError extends Error {
  override name = "ProtoError";
}

/**
 * Decoding limits, so a small hostile body cannot become a huge object graph: an empty nested
 * message is two bytes on the wire but a whole object here. No depot or BuildKit message comes
 * near them (a depot CLI status batch is one second of BuildKit status; BuildKit sends a few
 * hundred vertexes and log chunks a second at most).
 */
export const DECODE_LIMITS = {
  /** Nesting of messages inside messages. */
  depth: 32,
  /** Elements of one repeated field (or entries of one map) in one message. */
  repeated: 50_000,
  /** Messages and repeated elements in one decode, all fields together. */
  elements: 200_000,
} as const;

/** A body beyond DECODE_LIMITS: refused before more is allocated. */
export class ProtoLimitError extends ProtoError {
  override name = "ProtoLimitError";
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new ProtoError("truncated varint");
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new ProtoError("varint too long");
    }
  }
  uint(): number {
    const v = this.varint();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtoError("length too large");
    return Number(v);
  }
  bytes(): Uint8Array {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw new ProtoError("truncated field");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new ProtoError(`unsupported wire type ${wire}`);
    if (this.pos > this.buf.length) throw new ProtoError("truncated field");
  }
}

const textDecoder = new TextDecoder("utf-8", { fatal: true });

function zero(f: Field): unknown {
  if (f.repeated) return [];
  if (typeof f.type !== "string") return f.type.kind === "map" ? {} : undefined;
  if (f.optional || f.oneof) return undefined;
  switch (f.type) {
    case "string":
      return "";
    case "bytes":
      return new Uint8Array(0);
    case "bool":
      return false;
    case "int64":
    case "uint64":
      return 0n;
    default:
      return 0;
  }
}

function readScalar(r: Reader, type: Scalar, wire: number): unknown {
  switch (type) {
    case "string":
      try {
        return textDecoder.decode(r.bytes());
      } catch {
        throw new ProtoError("invalid UTF-8 in a string field");
      }
    case "bytes":
      return new Uint8Array(r.bytes());
    case "bool":
      return r.varint() !== 0n;
    case "int32":
    case "enum":
      return Number(BigInt.asIntN(32, r.varint()));
    case "uint32":
      return Number(BigInt.asUintN(32, r.varint()));
    case "int64":
      return BigInt.asIntN(64, r.varint());
    case "uint64":
      return BigInt.asUintN(64, r.varint());
    case "double": {
      if (wire !== 1) throw new ProtoError("double field with wrong wire type");
      const v = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, 8).getFloat64(0, true);
      r.pos += 8;
      return v;
    }
  }
}

const PACKABLE = new Set<Scalar>(["bool", "int32", "int64", "uint32", "uint64", "enum"]);

const byNumber = new WeakMap<MessageType, Map<number, Field>>();
function fieldsByNumber(type: MessageType, fields: Field[]): Map<number, Field> {
  let m = byNumber.get(type);
  if (!m) byNumber.set(type, (m = new Map(fields.map((f) => [f.no, f]))));
  return m;
}

export function decode(type: MessageType, buf: Uint8Array): Msg {
  return decodeWithin(type, buf, 0, { left: DECODE_LIMITS.elements }, type.name);
}

function decodeWithin(type: MessageType, buf: Uint8Array, depth: number, budget: { left: number }, path: string): Msg {
  if (depth > DECODE_LIMITS.depth) throw new ProtoLimitError(`${path}: messages nested more than ${DECODE_LIMITS.depth} deep`);
  const fields = type.fields();
  /** Counts one more element of `f`, refusing past the per-field and per-decode limits. */
  const counted = (f: Field, have: number) => {
    if (have >= DECODE_LIMITS.repeated) throw new ProtoLimitError(`${path}.${f.name}: more than ${DECODE_LIMITS.repeated} elements`);
    if (--budget.left < 0) throw new ProtoLimitError(`${path}.${f.name}: the message has more than ${DECODE_LIMITS.elements} elements in all`);
  };
  const byNo = fieldsByNumber(type, fields);
  const out: Msg = {};
  for (const f of fields) out[f.name] = zero(f);
  const mapSizes = new Map<Field, number>();
  const r = new Reader(buf);
  while (r.pos < buf.length) {
    const key = r.uint();
    const no = key >>> 3;
    const wire = key & 7;
    const f = byNo.get(no);
    if (!f) {
      r.skip(wire);
      continue;
    }
    const t = f.type;
    if (typeof t !== "string" && t.kind === "map") {
      const entries = out[f.name] as Record<string, unknown>;
      const n = mapSizes.get(f) ?? 0;
      counted(f, n);
      mapSizes.set(f, n + 1);
      const entry = new Reader(r.bytes());
      let k = "";
      let v: unknown = zero({ no: 2, name: "v", type: t.value });
      while (entry.pos < entry.buf.length) {
        const ek = entry.uint();
        if (ek >>> 3 === 1) k = readScalar(entry, "string", ek & 7) as string;
        else if (ek >>> 3 === 2) v = readScalar(entry, t.value, ek & 7);
        else entry.skip(ek & 7);
      }
      entries[k] = v;
      continue;
    }
    if (typeof t !== "string") {
      counted(f, f.repeated ? (out[f.name] as unknown[]).length : 0);
      const v = decodeWithin(t, r.bytes(), depth + 1, budget, `${path}.${f.name}`);
      if (f.repeated) (out[f.name] as unknown[]).push(v);
      else out[f.name] = v;
    } else if (f.repeated && wire === 2 && PACKABLE.has(t)) {
      const packed = new Reader(r.bytes());
      const list = out[f.name] as unknown[];
      while (packed.pos < packed.buf.length) {
        counted(f, list.length);
        list.push(readScalar(packed, t, 0));
      }
    } else {
      if (f.repeated) counted(f, (out[f.name] as unknown[]).length);
      const v = readScalar(r, t, wire);
      if (f.repeated) (out[f.name] as unknown[]).push(v);
      else out[f.name] = v;
    }
    if (f.oneof) for (const o of fields) if (o.oneof === f.oneof && o !== f) out[o.name] = undefined;
  }
  return out;
}

// ---- writing ----
class Writer {
  chunks: number[] = [];
  varint(v: bigint | number) {
    let n = BigInt.asUintN(64, BigInt(v));
    while (n > 0x7fn) {
      this.chunks.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.chunks.push(Number(n));
  }
  tag(no: number, wire: number) {
    this.varint((no << 3) | wire);
  }
  bytes(b: Uint8Array) {
    this.varint(b.length);
    for (const x of b) this.chunks.push(x);
  }
  finish() {
    return new Uint8Array(this.chunks);
  }
}

const textEncoder = new TextEncoder();

function writeScalar(w: Writer, no: number, type: Scalar, v: unknown) {
  switch (type) {
    case "string":
      w.tag(no, 2);
      w.bytes(textEncoder.encode(String(v)));
      return;
    case "bytes":
      w.tag(no, 2);
      w.bytes(v as Uint8Array);
      return;
    case "double": {
      w.tag(no, 1);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, Number(v), true);
      for (const x of b) w.chunks.push(x);
      return;
    }
    case "bool":
      w.tag(no, 0);
      w.varint(v ? 1 : 0);
      return;
    default:
      w.tag(no, 0);
      w.varint(typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v))));
  }
}

const isZero = (type: Scalar, v: unknown) =>
  v === undefined || v === null || v === "" || v === false || v === 0 || v === 0n || (type === "bytes" && (v as Uint8Array).length === 0);

export function encode(type: MessageType, msg: Msg): Uint8Array {
  const w = new Writer();
  for (const f of type.fields()) {
    const v = msg[f.name];
    if (v === undefined || v === null) continue;
    const t = f.type;
    if (typeof t !== "string" && t.kind === "map") {
      for (const [k, mv] of Object.entries(v as Record<string, unknown>)) {
        const e = new Writer();
        writeScalar(e, 1, "string", k);
        writeScalar(e, 2, t.value, mv);
        w.tag(f.no, 2);
        w.bytes(e.finish());
      }
    } else if (typeof t !== "string") {
      for (const item of f.repeated ? (v as Msg[]) : [v as Msg]) {
        w.tag(f.no, 2);
        w.bytes(encode(t, item));
      }
    } else if (f.repeated) {
      for (const item of v as unknown[]) writeScalar(w, f.no, t, item);
    } else if (f.optional || f.oneof || !isZero(t, v)) {
      writeScalar(w, f.no, t, v);
    }
  }
  return w.finish();
}

// ---- google.protobuf ----
export const Empty = message("google.protobuf.Empty", () => []);
export const Timestamp = message("google.protobuf.Timestamp", () => [
  { no: 1, name: "seconds", type: "int64" },
  { no: 2, name: "nanos", type: "int32" },
]);
export const toTimestamp = (d: Date): Msg => ({ seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1_000_000 });
export const fromTimestamp = (t: Msg | undefined): Date | null =>
  t ? new Date(Number(t.seconds as bigint) * 1000 + Math.floor(Number(t.nanos ?? 0) / 1_000_000)) : null;
