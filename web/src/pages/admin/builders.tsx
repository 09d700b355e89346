/**
 * @module web/pages/admin/builders
 * `/admin/builders`: the builder images (each runtime's configured image, whether the Docker
 * engine has it, which one builders start from), each organization's OCI runtime, and every
 * builder with its project, organization, platform, state, image and start time.
 */
import type { AdminBuildersView } from "../../../../src/builders/models.ts";
import { seg } from "../../api.ts";
import { Ago, bytes, Status } from "../../components/format.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { useSession } from "../../session.tsx";
import { AdminFrame } from "./frame.tsx";

const shortId = (id: string | null) => (id ? id.replace(/^sha256:/, "").slice(0, 12) : "—");

export function AdminBuilders() {
  const session = useSession();
  const data = useApi<AdminBuildersView>(session.me.is_admin ? "/api/v1/admin/builders" : null);
  return (
    <AdminFrame title="Builders">
      <Loaded from={data}>
        {(d) => (
          <>
            <h2>Builder images</h2>
            <p>
              Builders start with the <strong data-testid="runtime">{d.runtime}</strong> runtime. Assemble or load
              images with <code>slipway builder-image</code>.
            </p>
            <div class="table-wrap admin-table">
              <table aria-label="Builder images">
                <thead>
                  <tr>
                    <th scope="col">Runtime</th>
                    <th scope="col">Image</th>
                    <th scope="col">In use</th>
                    <th scope="col">On the engine</th>
                    <th scope="col">Image id</th>
                    <th scope="col">Size</th>
                    <th scope="col">Check</th>
                  </tr>
                </thead>
                <tbody>
                  {d.images.map((i) => (
                    <tr key={i.runtime}>
                      <th scope="row">{i.runtime}</th>
                      <td>
                        <code>{i.image}</code>
                      </td>
                      <td>{i.configured ? "yes" : "no"}</td>
                      <td>{i.present === null ? "engine did not answer" : i.present ? "present" : "missing"}</td>
                      <td>
                        <code>{shortId(i.id)}</code>
                      </td>
                      <td>{bytes(i.size_bytes)}</td>
                      <td class="check-output">
                        {i.status ? (
                          <>
                            <Status status={i.status === "ok" ? "pass" : "warn"} /> {i.message}
                          </>
                        ) : (
                          "—"
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <h2>OCI runtime per organization</h2>
            <div class="table-wrap admin-table">
              <table aria-label="OCI runtime per organization">
                <thead>
                  <tr>
                    <th scope="col">Organization</th>
                    <th scope="col">OCI runtime</th>
                  </tr>
                </thead>
                <tbody>
                  {d.orgs.map((o) => (
                    <tr key={o.id}>
                      <th scope="row">{o.slug}</th>
                      <td>{o.oci_runtime ?? "engine default"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <h2>Every builder</h2>
            {d.builders.length === 0 ? (
              <p class="empty">No builder has been started yet.</p>
            ) : (
              <div class="table-wrap admin-table">
                <table aria-label="Builders">
                  <thead>
                    <tr>
                      <th scope="col">Project</th>
                      <th scope="col">Organization</th>
                      <th scope="col">Platform</th>
                      <th scope="col">State</th>
                      <th scope="col">Image</th>
                      <th scope="col">Started</th>
                      <th scope="col">Last used</th>
                    </tr>
                  </thead>
                  <tbody>
                    {d.builders.map((b) => (
                      <tr key={b.id}>
                        <th scope="row">
                          <a href={`/projects/${seg(b.project_id)}`}>{b.project_name ?? b.project_id}</a>
                        </th>
                        <td>{b.org_slug ?? "—"}</td>
                        <td>{b.platform}</td>
                        <td>
                          <Status status={b.state} />
                          {b.last_error && <small class="field-error"> {b.last_error}</small>}
                        </td>
                        <td>
                          <code>{b.image ?? "—"}</code> <code>{shortId(b.image_id)}</code>
                          {b.oci_runtime && <small> ({b.oci_runtime})</small>}
                          {b.image_upgrade && (
                            <small class="hint">
                              {" "}
                              upgrade pending: <code>{shortId(b.image_upgrade.image_id)}</code>
                            </small>
                          )}
                        </td>
                        <td>
                          <Ago at={b.started_at} />
                        </td>
                        <td>
                          <Ago at={b.last_used_at} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        )}
      </Loaded>
    </AdminFrame>
  );
}
