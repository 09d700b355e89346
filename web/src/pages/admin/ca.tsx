/**
 * @module web/pages/admin/ca
 * `/admin/ca`: the appliance's certificate authorities — the root and the intermediates (server,
 * build clients), retired ones too — with subject, fingerprint, validity and days left; a CA
 * within 90 days of expiry is flagged. Certificates only: no key ever reaches the browser.
 */
import type { CertificateAuthorityView } from "../../../../src/pki/models.ts";
import { Loaded, useApi } from "../../data.tsx";
import { useSession } from "../../session.tsx";
import { AdminFrame } from "./frame.tsx";

/** Days before expiry from which a CA is flagged: time to rotate and hand out a new ca.pem. */
export const EXPIRY_WARNING_DAYS = 90;

const PURPOSE: Record<CertificateAuthorityView["purpose"], string> = {
  root: "root",
  server: "intermediate: server",
  "build-client": "intermediate: build clients",
};

export function AdminCa() {
  const session = useSession();
  const cas = useApi<CertificateAuthorityView[]>(session.me.is_admin ? "/api/v1/admin/ca" : null);
  return (
    <AdminFrame title="Certificate authority">
      <p>
        Rotate with <code>slipway pki rotate --purpose server|build-client</code> or{" "}
        <code>slipway pki rotate-root</code>; a new root must reach every client's <code>ca.pem</code>.
      </p>
      <Loaded from={cas}>
        {(list) => (
          <div class="table-wrap admin-table">
            <table aria-label="Certificate authorities">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">Subject</th>
                  <th scope="col">SHA-256 fingerprint</th>
                  <th scope="col">Not before</th>
                  <th scope="col">Not after</th>
                  <th scope="col">Days left</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {list.map((ca) => (
                  <tr key={ca.id} data-serial={ca.serial}>
                    <th scope="row">{PURPOSE[ca.purpose]}</th>
                    <td>{ca.subject}</td>
                    <td>
                      <code class="fingerprint">{ca.fingerprint_sha256}</code>
                    </td>
                    <td>{ca.not_before.slice(0, 10)}</td>
                    <td>{ca.not_after.slice(0, 10)}</td>
                    <td class="num">
                      {ca.days_left}
                      {ca.days_left < EXPIRY_WARNING_DAYS && (
                        <>
                          {" "}
                          <span class={`status ${ca.days_left < 0 ? "status-expired" : "status-warn"}`}>
                            {ca.days_left < 0 ? "expired" : "expires soon"}
                          </span>
                        </>
                      )}
                    </td>
                    <td>{ca.retired_at ? `retired ${ca.retired_at.slice(0, 10)}` : "active"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
    </AdminFrame>
  );
}
