/**
 * @module config/schema
 * Every server setting, its type, default and documentation, validated with zod. Each key is
 * `section.key` in the TOML file, `SLIPWAY_SECTION_KEY` in the environment and
 * `--set section.key=value` on the command line (common ones also have their own flags).
 */
import { z } from "zod";
import { parseListenAddress } from "./listen.ts";
import { parseTarget } from "../wire/egress/targets.ts";
import { allowEntryProblem, parseEndpoint } from "./values.ts";

/** The entries of a comma-separated setting, trimmed, empty ones dropped. */
const listEntries = (v: string) =>
  v
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

const listen = z.string().refine((v) => parseListenAddress(v) !== null, {
  message: "expected host:port with a port from 1 to 65535 (e.g. 0.0.0.0:8443, [::]:8443, :8443)",
});
const url = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return u.protocol === "https:" || u.protocol === "http:";
    } catch {
      return false;
    }
  },
  { message: "expected an absolute http:// or https:// URL" },
);
const path = z.string().min(1, { message: "expected a file system path" });
const imageRef = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$/, {
  message: "expected an image reference: repository[:tag][@sha256:digest]",
});

export const configSchema = z
  .object({
    server: z
      .object({
        listen: listen.default("0.0.0.0:8443"),
        build_listen: listen.default("0.0.0.0:8444"),
        public_url: url.optional(),
        build_public_address: listen.optional(),
        insecure_http: z.boolean().default(false),
        tls_cert_file: path.optional(),
        tls_key_file: path.optional(),
        max_body_bytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(1024 * 1024),
        shutdown_timeout_seconds: z.number().int().min(1).max(3600).default(30),
        // SIGTERM lets running builds finish this long (new ones are refused), then cancels them.
        drain_seconds: z.number().int().min(0).max(86_400).default(600),
        hsts_max_age_seconds: z.number().int().min(0).default(31_536_000),
      })
      .strict()
      .prefault({}),
    data: z.object({ dir: path.optional() }).strict().prefault({}),
    secrets: z.object({ master_key_file: path.optional() }).strict().prefault({}),
    database: z
      .object({ busy_timeout_ms: z.number().int().min(0).max(600_000).default(5000) })
      .strict()
      .prefault({}),
    pki: z
      .object({
        client_cert_max_lifetime_seconds: z
          .number()
          .int()
          .min(300)
          .max(7 * 86400)
          .default(90_000),
      })
      .strict()
      .prefault({}),
    builders: z
      .object({
        runtime: z.enum(["dockerd", "buildkitd"]).default("dockerd"),
        dockerd_image: imageRef.default("slipway/builder-dockerd:trixie"),
        buildkitd_image: imageRef.default("moby/buildkit:buildx-stable-1"),
        docker_socket: path.default("/var/run/docker.sock"),
        allow_emulation: z.boolean().default(false),
        pids_limit: z.number().int().min(64).max(4_194_304).default(16_384),
        ready_timeout_seconds: z.number().int().min(5).max(3600).default(90),
        // Each running builder holds a Docker bridge network; Docker's default address pools
        // hold about 30, so the host-wide cap stays below that.
        max_running: z.number().int().min(1).max(1000).default(24),
        queue_timeout_seconds: z.number().int().min(0).max(3600).default(300),
        dockerd_containerd_store: z.boolean().default(true),
        insecure_registries: z
          .string()
          .default("")
          .refine((v) => listEntries(v).every((x) => /^[A-Za-z0-9.-]+(:\d{1,5})?$|^[0-9a-fA-F:.]+\/\d{1,3}$/.test(x)), {
            message: "expected a comma-separated list of host[:port] or CIDR entries",
          }),
        network_policy: z.enum(["enforce", "off"]).default("enforce"),
        network_allow: z
          .string()
          .default("")
          .refine(
            (v) =>
              listEntries(v).every((x) => {
                const t = parseTarget(x);
                return typeof t !== "string" && t.kind === "cidr" && !/^::ffff:/i.test(t.cidr);
              }),
            {
              message: "expected a comma-separated list of IP addresses or CIDRs",
            },
          ),
        network_mirrors: z
          .string()
          .default("")
          .refine((v) => listEntries(v).every((x) => parseEndpoint(x) !== null), {
            message: "expected a comma-separated list of host:port entries",
          }),
      })
      .strict()
      .prefault({}),
    builds: z
      .object({
        health_timeout_seconds: z.number().int().min(10).max(3600).default(60),
        log_max_bytes: z
          .number()
          .int()
          .min(0)
          .max(1024 * 1024 * 1024)
          .default(20 * 1024 * 1024),
        cancel_grace_seconds: z.number().int().min(1).max(3600).default(15),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        // 30 days: a device login's token acts as the person with all their rights, so a
        // phished approval must not last a quarter; a monthly `slipway login` costs a person
        // a minute, and automation uses project tokens or OIDC, not device logins.
        device_token_days: z.number().int().min(1).max(365).default(30),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        // Days a row is kept after it stopped being usable; 0 keeps it for ever.
        device_logins_days: z.number().int().min(0).max(3650).default(1),
        sessions_days: z.number().int().min(0).max(3650).default(7),
        tokens_days: z.number().int().min(0).max(3650).default(30),
        build_logs_days: z.number().int().min(0).max(3650).default(30),
        interval_minutes: z
          .number()
          .int()
          .min(1)
          .max(24 * 60)
          .default(60),
      })
      .strict()
      .prefault({}),
    quotas: z
      .object({
        max_projects: z.number().int().min(0).max(100_000).default(100),
        max_builder_cpus: z.number().int().min(1).max(256).default(16),
        max_builder_memory_mb: z.number().int().min(256).max(1_048_576).default(32_768),
        max_cache_size_gb: z.number().int().min(1).max(10_000).default(200),
        max_running_builders: z.number().int().min(0).max(1000).default(8),
      })
      .strict()
      .prefault({}),
    metrics: z.object({ bearer_token_file: path.optional() }).strict().prefault({}),
    volumes: z
      .object({
        encryption: z.enum(["luks", "none"]).default("luks"),
        backend: z.enum(["file", "lvm"]).default("file"),
        dir: path.optional(),
        volume_group: z
          .string()
          .regex(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/, { message: "expected an LVM volume group name" })
          .optional(),
        filesystem: z.enum(["ext4", "xfs"]).default("ext4"),
        discards: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    egress: z
      .object({
        local_agent: z.boolean().default(false),
        extra_allow: z
          .string()
          .default("")
          .refine(
            (v) =>
              listEntries(v).every((x) => {
                const t = parseTarget(x);
                return typeof t !== "string" && t.kind === "cidr";
              }),
            {
              message: "expected a comma-separated list of IP addresses or CIDRs",
            },
          ),
        hosts_file: path.default("/etc/hosts"),
        nflog_group: z.number().int().min(1).max(65535).default(5317),
        grace_seconds: z.number().int().min(0).max(86400).default(300),
      })
      .strict()
      .prefault({}),
    registry: z
      .object({
        enabled: z.boolean().default(true),
        binary: z.string().min(1).default("docker-registry"),
        retention_days: z.number().int().min(0).max(3650).default(7),
        gc_interval_hours: z
          .number()
          .int()
          .min(0)
          .max(24 * 365)
          .default(24),
        builder_listen: listen.optional(),
      })
      .strict()
      .prefault({}),
    oidc: z
      .object({
        // A comma-separated string (env, --set) or, in the TOML file, an array of strings too.
        allow_internal: z
          .preprocess((v) => (Array.isArray(v) && v.every((x) => typeof x === "string") ? v.join(",") : v), z.string())
          .default("")
          .refine((v) => listEntries(v).every((x) => allowEntryProblem(x) === null), {
            message:
              "expected a comma-separated list of issuer origins (https://ghe.example.com) and CIDRs (10.0.0.0/8)",
          }),
        ca_file: path.optional(),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(["debug", "info", "warn", "error"]).default("info"),
        format: z.enum(["auto", "json", "pretty"]).default("auto"),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.volumes.backend === "lvm" && !c.volumes.volume_group) {
      ctx.addIssue({
        code: "custom",
        path: ["volumes", "volume_group"],
        message: 'volumes.backend = "lvm" needs volumes.volume_group',
      });
    }
    if (Boolean(c.server.tls_cert_file) !== Boolean(c.server.tls_key_file)) {
      ctx.addIssue({
        code: "custom",
        path: ["server", c.server.tls_cert_file ? "tls_key_file" : "tls_cert_file"],
        message: "server.tls_cert_file and server.tls_key_file must be set together",
      });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ConfigSection = keyof Config;

/** The sections and keys the schema knows, for unknown-key errors and env mapping. */
export function knownKeys(): Record<string, Record<string, z.ZodType>> {
  const out: Record<string, Record<string, z.ZodType>> = {};
  const root = unwrap(configSchema) as z.ZodObject;
  for (const [section, schema] of Object.entries(root.shape)) {
    out[section] = { ...(unwrap(schema as z.ZodType) as z.ZodObject).shape } as Record<string, z.ZodType>;
  }
  return out;
}

/** Strips default/optional/pipe wrappers to reach the type a value must have. */
export function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (;;) {
    const def = (s as unknown as { _zod: { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } } })._zod.def;
    if ((def.type === "default" || def.type === "optional" || def.type === "prefault") && def.innerType)
      s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else return s;
  }
}

/** The base type name of a key's schema: "string" | "number" | "boolean" | "enum" | ... */
export function baseType(schema: z.ZodType): string {
  return (unwrap(schema) as unknown as { _zod: { def: { type: string } } })._zod.def.type;
}
