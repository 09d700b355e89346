/**
 * @module test/support/oidc-issuer-child
 * An OIDC issuer's discovery document and JWKS, served from inside a network namespace the test
 * made (`ip netns exec NS bun oidc-issuer-child.ts '{"host","port","jwks"}'`). The test holds the
 * private keys and mints tokens itself; this serves only what the appliance fetches. Prints
 * "ready" once listening.
 */
const { host, port, jwks } = JSON.parse(process.argv[2]!) as { host: string; port: number; jwks: unknown };
const issuer = `http://${host}:${port}`;
Bun.serve({
  hostname: host,
  port,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/.well-known/openid-configuration")
      return Response.json({ issuer, jwks_uri: `${issuer}/.well-known/jwks` });
    if (path === "/.well-known/jwks") return Response.json(jwks);
    return new Response("not found", { status: 404 });
  },
});
console.log("ready");
