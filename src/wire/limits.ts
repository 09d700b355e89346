/**
 * @module wire/limits
 * The decoding limit every protobuf decode of an untrusted body goes through (the Connect
 * handlers' binary bodies, the build endpoint's status tap), so a small hostile body cannot become
 * a huge object graph: an empty nested message is two bytes on the wire but a whole object once
 * decoded. Every field costs a tag, so counting tags (message fields entered, the rest skipped,
 * nothing allocated) bounds the objects before @bufbuild/protobuf builds them. No depot or
 * BuildKit message comes near the limit (a depot CLI status batch is one second of BuildKit
 * status); the messages are not recursive, so their nesting is bounded by the schema.
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export const DECODE_LIMITS = { fields: 200_000 } as const;

/** A body beyond DECODE_LIMITS (Connect answers it as resource_exhausted). */
export class DecodeLimitError extends Error {
  override name = "DecodeLimitError";
}

const nested = new WeakMap<DescMessage, Map<number, DescMessage>>();
/** Field number → message type, for the fields whose payload is a message (maps: entries are counted, not entered). */
function messageFields(desc: DescMessage): Map<number, DescMessage> {
  let m = nested.get(desc);
  if (!m) {
    m = new Map();
    for (const f of desc.fields as DescField[]) {
      if (f.fieldKind === "message") m.set(f.number, f.message);
      else if (f.fieldKind === "list" && f.listKind === "message") m.set(f.number, f.message);
    }
    nested.set(desc, m);
  }
  return m;
}

/**
 * Throws DecodeLimitError when `bytes`, read as `desc`, holds more than DECODE_LIMITS.fields
 * fields at all depths. A body too small to hold that many (each field is at least two bytes)
 * is not read at all. Malformed bytes are left for the decoder to refuse.
 */
export function checkDecodeLimits(desc: DescMessage, bytes: Uint8Array): void {
  if (bytes.length < 2 * DECODE_LIMITS.fields) return;
  let left: number = DECODE_LIMITS.fields;
  const reader = new BinaryReader(bytes);
  const walk = (type: DescMessage, end: number) => {
    const fields = messageFields(type);
    while (reader.pos < end) {
      const [no, wire] = reader.tag();
      if (--left < 0)
        throw new DecodeLimitError(
          `request too large: ${type.typeName} holds more than ${DECODE_LIMITS.fields} fields`,
        );
      const sub = wire === WireType.LengthDelimited ? fields.get(no) : undefined;
      if (!sub) {
        reader.skip(wire, no);
        continue;
      }
      const len = reader.uint32();
      const subEnd = reader.pos + len;
      if (subEnd > end) return; // truncated: the decoder says so
      walk(sub, subEnd);
      reader.pos = subEnd;
    }
  };
  try {
    walk(desc, bytes.length);
  } catch (e) {
    if (e instanceof DecodeLimitError) throw e;
  }
}
