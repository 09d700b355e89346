/**
 * @module web/layout
 * Every signed-in page's frame: the header with the organization switcher, the navigation
 * (links named for where they go), who is signed in and "Sign out"; a skip link to the content.
 */
import type { ComponentChildren } from "preact";
import { useLocation } from "preact-iso";
import { useSession } from "./session.tsx";

/** The organization the page is about: from the address (/orgs/SLUG/…), else the last one used. */
export function useCurrentOrgSlug(): string | undefined {
  const { path } = useLocation();
  const session = useSession();
  const m = /^\/orgs\/([^/]+)/.exec(path);
  const fromPath = m?.[1] ? decodeURIComponent(m[1]) : undefined;
  if (fromPath) {
    localStorage.setItem("slipway.org", fromPath);
    return fromPath;
  }
  const last = localStorage.getItem("slipway.org");
  if (last && session.orgs.some((o) => o.slug === last)) return last;
  return session.orgs[0]?.slug;
}

/** Where the switcher goes: the same page of the other organization, else its projects. */
export function switchedTo(path: string, slug: string): string {
  const tab = /^\/orgs\/[^/]+(\/[a-z-]+)$/.exec(path)?.[1];
  return `/orgs/${encodeURIComponent(slug)}${tab ?? "/projects"}`;
}

export function Layout(props: { children: ComponentChildren }) {
  const session = useSession();
  const { route, path } = useLocation();
  const org = useCurrentOrgSlug();
  const link = (href: string, label: string) => (
    <li>
      <a href={href} aria-current={path === href || path.startsWith(`${href}/`) ? "page" : undefined}>
        {label}
      </a>
    </li>
  );
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          Slipway
        </a>
        {session.orgs.length > 0 && (
          <label class="org-switch">
            <span class="visually-hidden">Organization</span>
            <select
              aria-label="Organization"
              value={org}
              onChange={(e) => route(switchedTo(path, (e.target as HTMLSelectElement).value))}
            >
              {session.orgs.map((o) => (
                <option key={o.id} value={o.slug}>
                  {o.name}
                </option>
              ))}
            </select>
          </label>
        )}
        <nav aria-label="Main">
          <ul>
            {org && link(`/orgs/${encodeURIComponent(org)}/projects`, "Projects")}
            {org && link(`/orgs/${encodeURIComponent(org)}/builds`, "Builds")}
            {org && link(`/orgs/${encodeURIComponent(org)}/egress`, "Egress")}
            {org && link(`/orgs/${encodeURIComponent(org)}/members`, "Organization")}
            {session.me.is_admin && link("/admin", "Administration")}
          </ul>
        </nav>
        <div class="who">
          <a href="/account" aria-label={`Account: ${session.me.username}`}>
            {session.me.username}
          </a>
          <button type="button" onClick={() => void session.signOut().then(() => route("/login"))}>
            Sign out
          </button>
        </div>
      </header>
      <main id="content" tabIndex={-1}>
        {props.children}
      </main>
    </>
  );
}
