/**
 * @module web/components/tabs
 * The tab bar of the organization and project frames: a labelled navigation whose links are the
 * frame's pages, the current one marked with aria-current so screen readers announce it.
 */
import { useLocation } from "preact-iso";

export function Tabs(props: {
  /** The navigation's accessible name, e.g. "Project". */
  label: string;
  /** Each tab's address and its link text, in order. */
  tabs: readonly (readonly [href: string, label: string])[];
}) {
  const { path } = useLocation();
  return (
    <nav aria-label={props.label}>
      <ul class="tabs">
        {props.tabs.map(([href, label]) => (
          <li key={href}>
            <a href={href} aria-current={path === href ? "page" : undefined}>
              {label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}
