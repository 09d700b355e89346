/**
 * @module http/body
 * Request bodies with a size limit that holds for chunked uploads too: the Content-Length is
 * checked before reading, and the stream is counted while reading, so a lying or absent length
 * cannot make the server buffer more than the limit.
 */
import { InvalidInputError, PayloadTooLargeError } from "../errors.ts";

export function checkDeclaredLength(request: Request, limit: number): void {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    throw new PayloadTooLargeError(`request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
}

export async function readBodyLimited(request: Request, limit: number): Promise<Uint8Array> {
  checkDeclaredLength(request, limit);
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw new PayloadTooLargeError(`request body exceeds the limit of ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

export async function readJsonLimited(request: Request, limit: number): Promise<unknown> {
  const bytes = await readBodyLimited(request, limit);
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidInputError(`request body is not valid JSON: ${(e as Error).message}`);
  }
}
