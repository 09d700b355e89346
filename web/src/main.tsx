/**
 * @module web/main
 * The web UI's entry: the router (preact-iso), the session, the frame, and each area's pages.
 * Preact because a typed component model costs ~5 KB gzipped here, where hand-written DOM code
 * for twenty pages would cost more in bugs than the library in bytes.
 */
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { Layout, useCurrentOrgSlug } from "./layout.tsx";
import { accountRoutes } from "./pages/account/routes.tsx";
import { adminRoutes } from "./pages/admin/routes.tsx";
import { buildRoutes } from "./pages/build/routes.tsx";
import { buildsRoutes } from "./pages/builds/routes.tsx";
import { cacheRoutes } from "./pages/cache/routes.tsx";
import { deviceRoutes } from "./pages/device/routes.tsx";
import { egressRoutes } from "./pages/egress/routes.tsx";
import { NotFound } from "./pages/errors.tsx";
import { Login } from "./pages/login.tsx";
import { orgsRoutes } from "./pages/orgs/routes.tsx";
import { projectsRoutes } from "./pages/projects/routes.tsx";
import { tokensRoutes } from "./pages/tokens/routes.tsx";
import { SessionProvider } from "./session.tsx";

const routes = [
  ...accountRoutes,
  ...orgsRoutes,
  ...tokensRoutes,
  ...projectsRoutes,
  ...buildsRoutes,
  ...buildRoutes,
  ...cacheRoutes,
  ...egressRoutes,
  ...adminRoutes,
  ...deviceRoutes,
];

/** `/`: the current organization's projects. */
function Home() {
  const org = useCurrentOrgSlug();
  const { route } = useLocation();
  useEffect(() => {
    route(org ? `/orgs/${encodeURIComponent(org)}/projects` : "/account", true);
  }, [org, route]);
  return null;
}

/** Signed in already at /login (a bookmark): go where the login would have gone. */
function AlreadySignedIn() {
  const { query, route } = useLocation();
  useEffect(() => {
    const next = query.next ?? "/";
    route(next.startsWith("/") && !next.startsWith("//") ? next : "/", true);
  }, [query.next, route]);
  return null;
}

// A device-login link never carries its code into the page: a phishing link relies on a code
// filled in for the person (see pages/device). Dropped before anything renders.
if (location.pathname === "/device" && (location.search || location.hash)) history.replaceState(null, "", "/device");

function App() {
  return (
    <LocationProvider>
      <SessionProvider
        loading={
          <p class="loading" role="status">
            Loading…
          </p>
        }
        signedOut={(signedIn) => <Login onSignedIn={signedIn} />}
      >
        <Layout>
          <Router>
            <Route path="/" component={Home} />
            <Route path="/login" component={AlreadySignedIn} />
            {routes.map((r) => (
              <Route key={r.path} path={r.path} component={r.component} />
            ))}
            <Route default component={NotFound} />
          </Router>
        </Layout>
      </SessionProvider>
    </LocationProvider>
  );
}

const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App />, root);
}
