/**
 * @module web/pages/egress/events
 * What the runner hosts refused (enforce) or would have refused (monitor), grouped by
 * destination and port with counts; an owner allows a destination in one click (an allow rule
 * for it and that port), after which its group says which rule lets it through.
 */
import type { DestinationView } from "../../../../src/egress/models.ts";
import { api, seg } from "../../api.ts";
import { FormError, useAction } from "../../components/forms.tsx";
import { Ago } from "../../components/format.tsx";

function AllowButton(props: { org: string; dest: DestinationView; onChange: () => Promise<void> }) {
  const { dest } = props;
  const allow = useAction(async () => {
    await api.post(`/api/v1/orgs/${seg(props.org)}/egress/rules`, {
      action: "allow",
      target: dest.destination,
      ports: String(dest.port),
      comment: "allowed from the egress events",
    });
    await props.onChange();
  });
  return (
    <>
      <button
        type="button"
        aria-label={`Allow ${dest.destination} port ${dest.port}`}
        disabled={allow.busy}
        onClick={() => allow.run()}
      >
        Allow {dest.destination}
      </button>
      <FormError error={allow.error} />
    </>
  );
}

export function Events(props: {
  org: string;
  destinations: DestinationView[];
  owner: boolean;
  onChange: () => Promise<void>;
}) {
  return (
    <section aria-labelledby="egress-events">
      <h2 id="egress-events">Blocked and would-block connections</h2>
      {props.destinations.length === 0 ? (
        <p>Nothing reported: no runner host refused (or, in monitor mode, would have refused) a connection.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Connections by destination</caption>
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col">Port</th>
                <th scope="col">Times</th>
                <th scope="col">Last seen</th>
                <th scope="col">Now</th>
              </tr>
            </thead>
            <tbody>
              {props.destinations.map((d) => (
                <tr key={`${d.destination}:${d.port}`}>
                  <td class="mono">{d.destination}</td>
                  <td>
                    {d.port}/{d.protocols.join(",")}
                  </td>
                  <td>
                    {d.blocked > 0 && (
                      <span>
                        <span class="status status-blocked">blocked</span> {d.blocked}{" "}
                      </span>
                    )}
                    {d.would_block > 0 && (
                      <span>
                        <span class="status status-would-block">would block</span> {d.would_block}
                      </span>
                    )}
                    <small class="hint">
                      {" "}
                      from {d.hosts} {d.hosts === 1 ? "host" : "hosts"}
                    </small>
                  </td>
                  <td>
                    <Ago at={d.last_at} />
                  </td>
                  <td>
                    {d.allowed_by ? (
                      <span class="status status-allow">allowed now</span>
                    ) : props.owner ? (
                      <AllowButton org={props.org} dest={d} onChange={props.onChange} />
                    ) : (
                      <span>not allowed</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
