/**
 * @module web/pages/projects/setup
 * `/projects/:id/setup`: how to build on this project, as ready snippets with its id and this
 * server's address — the depot CLI, a GitHub Actions workflow (the depot CLI with the job's OIDC
 * token, trusted on the Trust tab) and `slipway build` — each as README documents it, with a
 * copy button.
 */
import type { ComponentChildren } from "preact";
import type { ProjectView } from "../../../../src/projects/models.ts";
import { CopyButton } from "../../components/forms.tsx";
import { ProjectFrame, projectPath } from "../../frames/project.tsx";

/** The depot CLI with a project token (README: First build). */
export function depotSnippet(server: string, project: string): string {
  return [
    "# ca.pem: the appliance's CA certificate; the token: a project token (Tokens tab)",
    `export DEPOT_API_URL=${server} DEPOT_TOKEN=slw_p_… SSL_CERT_FILE=$PWD/ca.pem`,
    "export DEPOT_NO_UPDATE_NOTIFIER=1 DEPOT_DISABLE_OTEL=1 DEPOT_ERROR_TELEMETRY=0   # offline, quiet",
    "depot projects list                                   # this project, by id and name",
    `depot build --project ${project} -t app:dev --output type=local,dest=out .`,
    "",
  ].join("\n");
}

/** GitHub Actions: the depot CLI with the job's OIDC token instead of DEPOT_TOKEN (README: First build, CI OIDC). */
export function githubSnippet(server: string, project: string): string {
  return [
    "# .github/workflows/build.yml",
    "name: build",
    "on: push",
    "permissions:",
    "  contents: read",
    "  id-token: write   # the job's OIDC token, which this project trusts (Trust tab)",
    "jobs:",
    "  build:",
    "    runs-on: self-hosted   # a runner that reaches the appliance",
    "    env:",
    `      DEPOT_API_URL: ${server}`,
    "      SSL_CERT_FILE: /etc/slipway/ca.pem   # the appliance's CA certificate, on the runner",
    '      DEPOT_NO_UPDATE_NOTIFIER: "1"',
    '      DEPOT_DISABLE_OTEL: "1"',
    '      DEPOT_ERROR_TELEMETRY: "0"',
    "    steps:",
    "      - uses: actions/checkout@v4",
    "      - run: npm install -g @depot/cli",
    `      - run: depot build --project ${project} -t app:dev --output type=local,dest=out .`,
    "",
  ].join("\n");
}

/** Slipway's own CLI (README: First build, the `slipway` command). */
export function slipwaySnippet(server: string, project: string): string {
  return [
    `slipway login --server ${server} --cacert ca.pem`,
    `echo '{"id":"${project}"}' > slipway.json     # this project; or --project, or SLIPWAY_PROJECT`,
    "slipway build -t app:dev --output type=local,dest=out .",
    "",
  ].join("\n");
}

function Snippet(props: { title: string; id: string; text: string; copyLabel: string; children?: ComponentChildren }) {
  return (
    <section aria-labelledby={`${props.id}-title`}>
      <h2 id={`${props.id}-title`}>{props.title}</h2>
      {props.children}
      <pre>
        <code id={props.id}>{props.text}</code>
      </pre>
      <CopyButton text={props.text} label={props.copyLabel} />
    </section>
  );
}

function Setup(props: { project: ProjectView }) {
  const server = location.origin;
  const id = props.project.id;
  return (
    <>
      <p>
        Every snippet trusts the appliance's CA certificate, <code>ca.pem</code> (in the appliance's data directory; ask
        its operator). This project's id is <code>{id}</code>.
      </p>
      <Snippet
        title="The depot CLI"
        id="snippet-depot"
        text={depotSnippet(server, id)}
        copyLabel="Copy depot CLI snippet"
      >
        <p>
          The official depot CLI, unchanged (<code>npm install -g @depot/cli</code>), with a project token made on the{" "}
          <a href={projectPath(id, "/tokens")}>Tokens</a> tab.
        </p>
      </Snippet>
      <Snippet
        title="GitHub Actions"
        id="snippet-github"
        text={githubSnippet(server, id)}
        copyLabel="Copy GitHub Actions workflow"
      >
        <p>
          No secret in CI: the depot CLI sends the job's OIDC token, whose audience is <code>https://depot.dev</code>.
          Add a GitHub Actions trust relationship for your repository on the{" "}
          <a href={projectPath(id, "/trust")}>Trust</a> tab, with <code>https://depot.dev</code> among its audiences.
        </p>
      </Snippet>
      <Snippet
        title="slipway build"
        id="snippet-slipway"
        text={slipwaySnippet(server, id)}
        copyLabel="Copy slipway build snippet"
      >
        <p>
          Slipway's own CLI, like <code>docker build</code>; it needs a BuildKit client on the machine (
          <code>docker-buildx</code> or <code>buildctl</code>). Without a token, <code>slipway login</code> asks you to
          approve it in this browser.
        </p>
      </Snippet>
    </>
  );
}

export function ProjectSetupPage(props: { id: string }) {
  return (
    <ProjectFrame id={props.id} title="Set up">
      {(p) => <Setup project={p} />}
    </ProjectFrame>
  );
}
