/**
 * @module web/pages/cache/cache
 * `/projects/:id/cache`: the project's build cache (usage per platform, encryption), its builders
 * (one per platform, their state and image), the owners' "Reset cache", and the images the
 * project saved in the appliance's registry (tags, size, the build that pushed them, age).
 */
import { useState } from "preact/hooks";
import type { BuilderView, CacheResetView, ProjectCacheView } from "../../../../src/builders/models.ts";
import type { ProjectView } from "../../../../src/projects/models.ts";
import type { RegistryUsageView } from "../../../../src/registry/models.ts";
import { api, seg } from "../../api.ts";
import { ConfirmButton, CopyButton } from "../../components/forms.tsx";
import { Ago, bytes } from "../../components/format.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { ProjectFrame } from "../../frames/project.tsx";
import { canOwn, findOrg, useSession } from "../../session.tsx";

const GIB = 1024 ** 3;

/** A usage bar as SVG attributes (the CSP allows no inline style). */
function UsageBar(props: { used: number; size: number | null; label: string }) {
  const share = props.size ? Math.min(1, props.used / props.size) : 0;
  return (
    <svg class="usage-bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label={props.label}>
      <rect class="track" x="0" y="0" width="100" height="8" />
      <rect class="fill" x="0" y="0" width={(share * 100).toFixed(1)} height="8" />
    </svg>
  );
}

function CacheUsage(props: { cache: ProjectCacheView }) {
  const { cache } = props;
  return (
    <section aria-labelledby="cache-usage">
      <h2 id="cache-usage">Usage</h2>
      <p>
        Each platform has its own cache volume of {cache.size_gb} GB; entries unused for {cache.keep_days} days are
        dropped. Encryption: {cache.encryption}.
      </p>
      {cache.platforms.length === 0 ? (
        <p>The cache is empty: no build has run since it was created or last reset.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Cache usage per platform</caption>
            <thead>
              <tr>
                <th scope="col">Platform</th>
                <th scope="col">Used</th>
                <th scope="col">Volume</th>
                <th scope="col">Share</th>
                <th scope="col">Encryption</th>
              </tr>
            </thead>
            <tbody>
              {cache.platforms.map((p) => (
                <tr key={p.platform}>
                  <td>{p.platform}</td>
                  <td>{bytes(p.used_bytes)}</td>
                  <td>{p.size_bytes === null ? "no fixed size" : bytes(p.size_bytes)}</td>
                  <td>
                    <UsageBar
                      used={p.used_bytes}
                      size={p.size_bytes ?? cache.size_gb * GIB}
                      label={`${p.platform}: ${bytes(p.used_bytes)} of ${bytes(p.size_bytes ?? cache.size_gb * GIB)}`}
                    />
                  </td>
                  <td>{p.encryption}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Builders(props: { builders: BuilderView[] }) {
  return (
    <section aria-labelledby="cache-builders">
      <h2 id="cache-builders">Builders</h2>
      {props.builders.length === 0 ? (
        <p>No builder: one starts per platform with the next build.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">The project's builders</caption>
            <thead>
              <tr>
                <th scope="col">Platform</th>
                <th scope="col">State</th>
                <th scope="col">Image</th>
                <th scope="col">Since</th>
                <th scope="col">Last used</th>
              </tr>
            </thead>
            <tbody>
              {props.builders.map((b) => (
                <tr key={b.platform}>
                  <td>
                    {b.platform}
                    {b.emulated ? " (emulated)" : ""}
                  </td>
                  <td>
                    <span class={`status status-builder-${b.state}`}>{b.state}</span>
                    {b.last_error && <small class="field-error"> {b.last_error}</small>}
                    {b.image_upgrade && <small class="hint"> upgrades to {b.image_upgrade.image} when idle</small>}
                  </td>
                  <td class="mono">{b.image ?? "—"}</td>
                  <td>
                    <Ago at={b.updated_at} />
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
    </section>
  );
}

function SavedImages(props: { registry: RegistryUsageView }) {
  const r = props.registry;
  return (
    <section aria-labelledby="cache-images">
      <h2 id="cache-images">Saved images</h2>
      {!r.available && <p class="form-error">The registry is not running: saved images cannot be pulled now.</p>}
      <p>
        Pull from <code class="mono">{r.repository}</code> <CopyButton text={r.repository} label="Copy repository" />
      </p>
      <p>
        Kept {r.retention_days === 0 ? "until the next collection" : `${r.retention_days} days after their last push`};{" "}
        {r.images.length} {r.images.length === 1 ? "image" : "images"}, {bytes(r.total_bytes)} in total.
      </p>
      {r.images.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Saved images</caption>
            <thead>
              <tr>
                <th scope="col">Tags</th>
                <th scope="col">Size</th>
                <th scope="col">Build</th>
                <th scope="col">Pushed</th>
              </tr>
            </thead>
            <tbody>
              {r.images.map((i) => (
                <tr key={i.digest}>
                  <td>
                    <span class="mono">{i.tags.length ? i.tags.join(", ") : "(untagged)"}</span>
                    <br />
                    <small class="hint mono" title={i.digest}>
                      {i.digest.slice(0, 19)}
                    </small>
                  </td>
                  <td>{bytes(i.bytes)}</td>
                  <td>{i.build_id ? <a href={`/builds/${seg(i.build_id)}`}>{i.build_id}</a> : "—"}</td>
                  <td>
                    <Ago at={i.pushed_at} />
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

function CacheBody(props: { project: ProjectView }) {
  const { project } = props;
  const session = useSession();
  const owner = canOwn(session, findOrg(session, project.org_id));
  const base = `/api/v1/projects/${seg(project.id)}`;
  const cache = useApi<ProjectCacheView>(`${base}/cache`);
  const builders = useApi<BuilderView[]>(`${base}/builders`);
  const registry = useApi<RegistryUsageView>(`${base}/registry`);
  const [reset, setReset] = useState<CacheResetView | null>(null);
  return (
    <>
      <Loaded from={cache}>{(c) => <CacheUsage cache={c} />}</Loaded>
      {owner && (
        <div class="actions">
          <ConfirmButton
            label="Reset cache"
            danger
            question={`Reset the build cache of ${project.name}? Its builders stop and every platform's cache volume is erased; the next build starts from an empty cache. Saved images stay.`}
            confirmLabel="Erase the cache"
            onConfirm={async () => {
              setReset(await api.post<CacheResetView>(`${base}/cache/reset`));
              await Promise.all([cache.reload(), builders.reload()]);
            }}
          />
        </div>
      )}
      {reset && (
        <p role="status">
          {reset.platforms.length
            ? `Cache reset: ${reset.platforms.join(", ")} erased.`
            : "Cache reset: there was nothing to erase."}
        </p>
      )}
      <Loaded from={builders}>{(b) => <Builders builders={b} />}</Loaded>
      <Loaded from={registry}>{(r) => <SavedImages registry={r} />}</Loaded>
    </>
  );
}

export function CachePage(props: { id: string }) {
  return (
    <ProjectFrame id={props.id} title="Cache">
      {(p) => <CacheBody project={p} />}
    </ProjectFrame>
  );
}
