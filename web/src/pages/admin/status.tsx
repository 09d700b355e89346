/**
 * @module web/pages/admin/status
 * `/admin` and `/admin/status`: the appliance's version and every readiness check (/readyz) with
 * pass, warn or fail and its output, as the load balancer sees them.
 */
import { useEffect, useState } from "preact/hooks";
import { Status } from "../../components/format.tsx";
import { AdminFrame } from "./frame.tsx";

/** /readyz's body (application/health+json). */
type Readiness = {
  status: "pass" | "warn" | "fail";
  version: string;
  checks: Record<string, { status: string; output?: string; observedValue?: unknown; time?: string }[]>;
};

export function AdminStatus() {
  const [report, setReport] = useState<Readiness | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    try {
      // 503 when a check fails: still the report, so read the body whatever the status.
      const res = await fetch("/readyz", { headers: { accept: "application/health+json" } });
      setReport((await res.json()) as Readiness);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    void load();
  }, []);
  return (
    <AdminFrame title="Appliance status">
      {error && (
        <p class="form-error" role="alert">
          Status unavailable: {error}
        </p>
      )}
      {!report && !error && (
        <p class="loading" role="status">
          Loading…
        </p>
      )}
      {report && (
        <>
          <div class="cards">
            <div class="card">
              <div>Version</div>
              <div class="value" data-testid="version">
                {report.version}
              </div>
            </div>
            <div class="card">
              <div>Overall</div>
              <div class="value" data-testid="overall">
                <Status status={report.status} />
              </div>
            </div>
          </div>
          <div class="page-head">
            <h2>Readiness checks</h2>
            <button type="button" onClick={() => void load()}>
              Check again
            </button>
          </div>
          <div class="table-wrap admin-table">
            <table aria-label="Readiness checks">
              <thead>
                <tr>
                  <th scope="col">Check</th>
                  <th scope="col">Result</th>
                  <th scope="col">Output</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(report.checks).map(([name, [check]]) => (
                  <tr key={name}>
                    <th scope="row">
                      <code>{name}</code>
                    </th>
                    <td>
                      <Status status={check?.status ?? "fail"} />
                    </td>
                    <td class="check-output">{check?.output ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </AdminFrame>
  );
}
