/**
 * @module web/pages/admin/frame
 * Every administration page's frame: the title and the tabs (status, users, organizations,
 * builders, certificate authority). Someone who is not an administrator sees the not-allowed
 * page here; the API refuses them all the same (appliance:admin).
 */
import type { ComponentChildren } from "preact";
import { useLocation } from "preact-iso";
import { useSession } from "../../session.tsx";
import { Forbidden } from "../errors.tsx";

export const ADMIN_TABS = [
  ["/admin/status", "Status"],
  ["/admin/users", "Users"],
  ["/admin/orgs", "Organizations"],
  ["/admin/builders", "Builders"],
  ["/admin/ca", "Certificate authority"],
] as const;

export function AdminFrame(props: { title: string; children: ComponentChildren }) {
  const session = useSession();
  const { path } = useLocation();
  if (!session.me.is_admin) return <Forbidden detail="Administration is for the appliance's administrators." />;
  return (
    <>
      <p class="breadcrumb">Administration</p>
      <h1>{props.title}</h1>
      <nav aria-label="Administration">
        <ul class="tabs">
          {ADMIN_TABS.map(([href, label]) => (
            <li key={href}>
              <a
                href={href}
                aria-current={path === href || (path === "/admin" && href === "/admin/status") ? "page" : undefined}
              >
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {props.children}
    </>
  );
}
