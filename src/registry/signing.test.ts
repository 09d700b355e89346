/**
 * @module registry/signing.test
 * The token signer: libtrust key ids in registry 2.8's format, ES256 JWS that verify with the
 * key and fail when tampered or expired, and a key that is sealed at rest and comes back the same.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { exportPkcs8, generateKeyPair, x509 } from "../pki/x509.ts";
import { createSealer } from "../secrets/index.ts";
import { base32, libtrustKeyId, loadSigningKey, signingKeyOf } from "./signing.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test("base32 is RFC 4648's alphabet without padding", () => {
  expect(base32(new TextEncoder().encode("foobar"))).toBe("MZXW6YTBOI");
  expect(base32(new Uint8Array([0xff]))).toBe("74");
});

test("a libtrust key id is the SHA-256 of the SPKI, 240 bits in base32, 12 groups of 4", () => {
  const spki = new Uint8Array(91).fill(7);
  const kid = libtrustKeyId(spki);
  expect(kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
  const hash = new Uint8Array(new Bun.CryptoHasher("sha256").update(spki).digest());
  expect(kid.replaceAll(":", "")).toBe(base32(hash.subarray(0, 30)));
});

test("tokens are ES256 JWS with the kid of the certificate's key; tampered or expired ones fail", async () => {
  const key = await signingKeyOf(await exportPkcs8((await generateKeyPair()).privateKey));
  const cert = new x509.X509Certificate(key.certPem);
  expect(libtrustKeyId(new Uint8Array(cert.publicKey.rawData))).toBe(key.kid);
  const now = Math.floor(Date.now() / 1000);
  const jws = await key.sign({ sub: "x", exp: now + 60 });
  const header = JSON.parse(Buffer.from(jws.split(".")[0]!, "base64url").toString()) as Record<string, string>;
  expect(header).toEqual({ typ: "JWT", alg: "ES256", kid: key.kid });
  expect(Buffer.from(jws.split(".")[2]!, "base64url").length).toBe(64); // r || s
  expect((await key.verify(jws))?.sub).toBe("x");
  const [h, , sig] = jws.split(".");
  const forged = `${h}.${Buffer.from(JSON.stringify({ sub: "admin", exp: now + 60 })).toString("base64url")}.${sig}`;
  expect(await key.verify(forged)).toBeNull();
  expect(await key.verify(await key.sign({ sub: "x", exp: now - 1 }))).toBeNull();
  expect(await key.verify("not.a.jws")).toBeNull();
  const other = await signingKeyOf(await exportPkcs8((await generateKeyPair()).privateKey));
  expect(await other.verify(jws)).toBeNull();
});

test("the key is made once, stored sealed (never in plain), and loads back the same", async () => {
  const dir = mkdtempSync(join(tmpdir(), "slipway-regkey-"));
  dirs.push(dir);
  const db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  const sealer = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
  const a = await loadSigningKey({ db, sealer });
  const b = await loadSigningKey({ db, sealer });
  expect(b.kid).toBe(a.kid);
  expect((db.query("SELECT COUNT(*) AS n FROM registry_signing_keys").get() as { n: number }).n).toBe(1);
  expect(await b.verify(await a.sign({ exp: Math.floor(Date.now() / 1000) + 60 }))).not.toBeNull();
  // Another master key cannot open it.
  await expect(
    loadSigningKey({ db, sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))) }),
  ).rejects.toThrow(/master key/);
  db.close();
});
