/**
 * @module web/frames/org
 * Every page of one organization's administration: its name and the tabs (members, tokens,
 * audit log, settings). An organization the caller does not belong to is the not-found page.
 */
import type { ComponentChildren } from "preact";
import type { OrgView } from "../../../src/orgs/models.ts";
import { seg } from "../api.ts";
import { Tabs } from "../components/tabs.tsx";
import { NotFound } from "../pages/errors.tsx";
import { canOwn, findOrg, useSession } from "../session.tsx";

export const ORG_TABS = [
  ["/members", "Members"],
  ["/tokens", "Tokens"],
  ["/audit", "Audit log"],
  ["/settings", "Settings"],
] as const;

export const orgPath = (slug: string, tab = "") => `/orgs/${seg(slug)}${tab}`;

export function OrgFrame(props: {
  org: string;
  title: string;
  children: (org: OrgView, owner: boolean) => ComponentChildren;
}) {
  const session = useSession();
  const org = findOrg(session, props.org);
  if (!org) return <NotFound />;
  return (
    <>
      <p class="breadcrumb">{org.name} / organization</p>
      <h1>{props.title}</h1>
      <Tabs label="Organization" tabs={ORG_TABS.map(([tab, label]) => [orgPath(org.slug, tab), label] as const)} />
      {props.children(org, canOwn(session, org))}
    </>
  );
}
