/**
 * @module web/embed.macro
 * Runs at bundle time: reads the web UI's files from web/ so the binary serves them with no
 * files on disk and no CDN (air-gapped sites).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
};

export function embeddedWebAssets(): Record<string, { type: string; body: string }> {
  const root = join(import.meta.dir, "..", "..", "web");
  const out: Record<string, { type: string; body: string }> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const ext = name.split(".").pop() ?? "";
        if (TYPES[ext]) out[`/${relative(root, p)}`] = { type: TYPES[ext]!, body: readFileSync(p, "utf8") };
      }
    }
  };
  walk(root);
  return out;
}
