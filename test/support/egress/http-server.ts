/**
 * @module test/support/egress/http-server
 * An HTTP server for egress tests, run inside a server namespace (`ip netns exec NS bun …`):
 * answers on every address of that namespace (IPv4 and IPv6), port 80, with its name.
 */
const name = process.argv[2] ?? "server";
Bun.serve({ hostname: "::", port: 80, fetch: () => new Response(name) });
console.log("ready");
