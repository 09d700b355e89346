/**
 * @module log/logger
 * Structured logging: one JSON object per line (journald, log shippers), or a readable line on a
 * TTY. Secrets never reach a log line: fields whose names look secret are replaced, and any
 * string that looks like a Slipway credential or a PEM private key is masked wherever it appears.
 * Under systemd (stderr is the journal) each line starts with its sd-daemon priority (`<4>` for a
 * warning) so `journalctl -p warning` filters; the line stays JSON after it: log shippers reading
 * the journal keep parsing the fields, and journald strips the prefix into PRIORITY.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "pretty";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog priorities (sd-daemon(3)): LOG_DEBUG 7, LOG_INFO 6, LOG_WARNING 4, LOG_ERR 3. */
const SYSLOG_PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

// Matched at the end of a field name, any case: apiToken, client_secret, masterKey, ... (but not
// admin_token_file, which names where a secret is, not the secret).
const SECRET_FIELD =
  /(token|secret|password|passwd|authorization|cookie|private_?key|master_?key|key_?material|credential)s?$/i;
const TOKEN_TEXT = /slw_[a-z]{1,2}_[A-Za-z0-9]{16,}/g;
const PEM_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;

/** Masks anything secret-looking in a string. */
export function redactText(text: string): string {
  return text
    .replace(PEM_KEY, "[redacted private key]")
    .replace(TOKEN_TEXT, "slw_[redacted]")
    .replace(BEARER, "$1 [redacted]");
}

/** Deep-copies a value with secret-named fields replaced and secret-looking text masked. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return "[…]";
  if (typeof value === "string") return redactText(value);
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message) };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_FIELD.test(k) && v != null ? "[redacted]" : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr by default so that `--json` output on stdout stays clean. */
  write?: (line: string) => void;
  now?: () => Date;
  /** Prefix each line with `<N>`, its syslog priority: set when stderr is the journal (systemd/journal). */
  journalPriority?: boolean;
}

export function createLogger(opts: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const min = ORDER[opts.level ?? "info"];
  const format = opts.format ?? "json";
  const writeLine = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = opts.now ?? (() => new Date());
  const write = opts.journalPriority
    ? (level: LogLevel, line: string) => writeLine(`<${SYSLOG_PRIORITY[level]}>${line}`)
    : (_level: LogLevel, line: string) => writeLine(line);

  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (ORDER[level] < min) return;
    const data = redact({ ...bound, ...fields }) as LogFields;
    const time = now().toISOString();
    if (format === "json") {
      // A field may not pose as the line's own time, level or message.
      const line: LogFields = { time, level, msg: redactText(msg) };
      for (const [k, v] of Object.entries(data)) line[k in line ? `field_${k}` : k] = v;
      write(level, JSON.stringify(line));
    } else {
      // One event, one line: newlines inside values are escaped.
      const flat = (v: string) => v.replace(/\r?\n/g, "\\n");
      const extra = Object.entries(data)
        .map(([k, v]) => `${k}=${typeof v === "string" ? flat(v) : JSON.stringify(v)}`)
        .join(" ");
      write(
        level,
        `${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${flat(redactText(msg))}${extra ? `  ${extra}` : ""}`,
      );
    }
  };

  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(opts, { ...bound, ...fields }),
  };
}

/** A logger that drops everything: for tests and commands that must stay quiet. */
export const silentLogger: Logger = createLogger({ write: () => {} });
