/**
 * @module volumes/cryptsetup
 * The cryptsetup calls a LUKS2 cache volume needs, as argv arrays run through src/host. Every key
 * travels on stdin (`--key-file -` with an exact `--keyfile-size`), never in argv, a file or a log;
 * when two keys are needed (adding a keyslot) both go on stdin, one after the other.
 *
 * Format parameters: LUKS2, aes-xts-plain64 with a 512-bit key, keyslots with
 * PBKDF2-SHA256 at 1000 iterations — the key is 64 random bytes, so a slow KDF buys nothing and
 * argon2id's defaults would cost seconds and hundreds of MB per unlock.
 */
import { SlipwayError } from "../errors.ts";
import type { RunOptions, RunResult } from "../host/run.ts";

export type Runner = (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;

export const VOLUME_KEY_BYTES = 64;

export const LUKS_FORMAT_PARAMS = [
  "--type",
  "luks2",
  "--cipher",
  "aes-xts-plain64",
  "--key-size",
  "512",
  "--hash",
  "sha256",
  "--pbkdf",
  "pbkdf2",
  "--pbkdf-force-iterations",
  "1000",
] as const;

const KEY_ON_STDIN = ["--key-file", "-", "--keyfile-size", String(VOLUME_KEY_BYTES)] as const;

/** A host command failed; the message carries its stderr (which never holds key material). */
export class VolumeCommandError extends SlipwayError {
  override name = "VolumeCommandError";
}

export async function must(run: Runner, argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
  const r = await run(argv, { timeoutMs: 120_000, ...opts });
  if (r.code !== 0) {
    const why = r.timedOut ? "timed out" : `exit ${r.code}`;
    throw new VolumeCommandError(
      `${argv.slice(0, 2).join(" ")} failed (${why}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ")}`,
      { command: argv[0], code: r.code },
    );
  }
  return r;
}

function checkKey(key: Uint8Array): Uint8Array {
  if (key.length !== VOLUME_KEY_BYTES) throw new Error(`volume keys are ${VOLUME_KEY_BYTES} bytes`);
  return key;
}

export function cryptsetup(run: Runner) {
  return {
    async format(device: string, key: Uint8Array): Promise<void> {
      await must(run, ["cryptsetup", "luksFormat", "--batch-mode", ...LUKS_FORMAT_PARAMS, ...KEY_ON_STDIN, device], {
        stdin: checkKey(key),
      });
    },

    /** Opens with the dm-crypt queue bypass flags (lower latency, no extra kernel workqueues). */
    async open(device: string, name: string, key: Uint8Array, o: { discards: boolean }): Promise<void> {
      await must(
        run,
        [
          "cryptsetup",
          "open",
          "--type",
          "luks2",
          ...KEY_ON_STDIN,
          "--perf-no_read_workqueue",
          "--perf-no_write_workqueue",
          ...(o.discards ? ["--allow-discards"] : []),
          device,
          name,
        ],
        { stdin: checkKey(key) },
      );
    },

    async close(name: string): Promise<void> {
      await must(run, ["cryptsetup", "close", name]);
    },

    /** The keyslot `key` opens, or null when it opens none (also for a device without a LUKS header). */
    async testKey(device: string, key: Uint8Array): Promise<number | null> {
      const r = await run(["cryptsetup", "open", "--test-passphrase", "--verbose", ...KEY_ON_STDIN, device], {
        stdin: checkKey(key),
      });
      if (r.code !== 0) return null;
      const m = /Key slot (\d+) unlocked/.exec(r.stdout + r.stderr);
      return m ? Number(m[1]) : -1;
    },

    /** Adds `next` in a new keyslot, authorised by `existing`; both keys on stdin, in that order. */
    async addKey(device: string, existing: Uint8Array, next: Uint8Array): Promise<void> {
      const stdin = new Uint8Array(VOLUME_KEY_BYTES * 2);
      stdin.set(checkKey(existing), 0);
      stdin.set(checkKey(next), VOLUME_KEY_BYTES);
      try {
        await must(
          run,
          [
            "cryptsetup",
            "luksAddKey",
            "--batch-mode",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            ...KEY_ON_STDIN,
            "--new-keyfile-size",
            String(VOLUME_KEY_BYTES),
            device,
            "-",
          ],
          { stdin },
        );
      } finally {
        stdin.fill(0);
      }
    },

    async killSlot(device: string, slot: number): Promise<void> {
      await must(run, ["cryptsetup", "luksKillSlot", "--batch-mode", device, String(slot)]);
    },

    /** Active keyslot numbers, from `luksDump`. */
    async slots(device: string): Promise<number[]> {
      return parseLuksDump((await must(run, ["cryptsetup", "luksDump", device])).stdout).keyslots.map((k) => k.slot);
    },

    async dump(device: string): Promise<LuksDump> {
      return parseLuksDump((await must(run, ["cryptsetup", "luksDump", device])).stdout);
    },

    async isLuks(device: string): Promise<boolean> {
      return (await run(["cryptsetup", "isLuks", device])).code === 0;
    },

    /** Crypto-erase: wipes every keyslot, so no key (stored or leaked) opens the data again. */
    async erase(device: string): Promise<void> {
      await must(run, ["cryptsetup", "erase", "--batch-mode", device]);
    },

    /** Grows the mapping to its underlying device's size (LUKS2 may need the key: on stdin). */
    async resize(name: string, key: Uint8Array): Promise<void> {
      await must(run, ["cryptsetup", "resize", ...KEY_ON_STDIN, name], { stdin: checkKey(key) });
    },

    /** The loop device under an open mapping of an image file, if any. */
    async loopDevice(name: string): Promise<string | null> {
      const r = await run(["cryptsetup", "status", name]);
      if (r.code !== 0) return null;
      const m = /^\s*device:\s+(\/dev\/loop\d+)\s*$/m.exec(r.stdout);
      return m ? m[1]! : null;
    },
  };
}

export type Cryptsetup = ReturnType<typeof cryptsetup>;

export interface LuksDump {
  version: number | null;
  cipher: string | null;
  keyslots: { slot: number; keyBits: number | null; pbkdf: string | null; iterations: number | null }[];
}

/** The parts of `cryptsetup luksDump` (LUKS2) tests and checks look at. */
export function parseLuksDump(text: string): LuksDump {
  const version = /^Version:\s+(\d+)/m.exec(text);
  const segCipher = /Data segments:[\s\S]*?cipher:\s+(\S+)/.exec(text);
  const keyslots: LuksDump["keyslots"] = [];
  const section = /^Keyslots:\n([\s\S]*?)(?=^\S)/m.exec(`${text}\nEnd:\n`);
  if (section) {
    const parts = section[1]!.split(/^\s{2}(?=\d+: )/m).filter((p) => /^\d+: /.test(p));
    for (const p of parts) {
      keyslots.push({
        slot: Number(/^(\d+):/.exec(p)![1]),
        keyBits: Number(/^\s*Key:\s+(\d+) bits/m.exec(p)?.[1] ?? NaN) || null,
        pbkdf: /^\s*PBKDF:\s+(\S+)/m.exec(p)?.[1] ?? null,
        iterations: Number(/^\s*Iterations:\s+(\d+)/m.exec(p)?.[1] ?? NaN) || null,
      });
    }
  }
  return { version: version ? Number(version[1]) : null, cipher: segCipher?.[1] ?? null, keyslots };
}
