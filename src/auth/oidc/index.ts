/**
 * @module auth/oidc
 * CI OIDC tokens (GitHub Actions, CircleCI, Buildkite, any OIDC issuer) checked against a
 * project's trust relationships. The public face: build `oidcKeysFactory` once per process (it
 * caches issuers' keys), hand it to `ciTokenVerifierFactory`, and validate stored trusts with
 * `validateTrust`. Rejections are UnauthenticatedError with a reason fit for the audit log.
 */
export { ALLOWED_ALGS, peekJws, type JsonWebKeySet, type Jwk, type JwsAlg } from "./jwt.ts";
export { oidcKeysFactory, type OidcKeys, type OidcKeysDeps } from "./keys.ts";
export { allowEntryProblem, NO_INTERNAL, parseAllowInternal, type InternalAllowance } from "./address.ts";
export { pinnedGetFactory, type DocumentGet } from "./fetch.ts";
export {
  BUILDKITE_ISSUER,
  GITHUB_ISSUER,
  audienceMatches,
  circleciIssuer,
  claimsMatch,
  defaultIssuer,
  githubEnterpriseIssuer,
  globMatch,
  validateTrust,
  type TrustProvider,
  type TrustRelationship,
} from "./trust-rules.ts";
export {
  ciTokenVerifierFactory,
  type CiTokenVerifier,
  type CiTokenVerifierDeps,
  type VerifiedCiToken,
} from "./verify.ts";
