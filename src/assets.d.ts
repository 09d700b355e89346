/**
 * @module assets
 * Types for files imported `with { type: "file" }`: each resolves to a path (embedded in the
 * compiled binary). TypeScript does not know such imports, so each one is declared here.
 */
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const path: string;
  export default path;
}
declare module "swagger-ui-dist/swagger-ui.css" {
  const path: string;
  export default path;
}
