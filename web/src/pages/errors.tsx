/**
 * @module web/pages/errors
 * The UI's pages for what the API refused: not found (also what another organization's pages
 * answer, exactly like a missing one), not allowed, and anything else with the API's detail.
 */
import { ApiError } from "../api.ts";

export function NotFound() {
  return (
    <section class="error-page" aria-labelledby="error-title">
      <h1 id="error-title">Not found</h1>
      <p>There is nothing here, or it is not yours to see.</p>
      <p>
        <a href="/">Back to your projects</a>
      </p>
    </section>
  );
}

export function Forbidden(props: { detail?: string }) {
  return (
    <section class="error-page" aria-labelledby="error-title">
      <h1 id="error-title">Not allowed</h1>
      <p>{props.detail || "Your role does not allow this."}</p>
      <p>
        <a href="/">Back to your projects</a>
      </p>
    </section>
  );
}

export function ErrorPage(props: { error: Error }) {
  const e = props.error;
  if (e instanceof ApiError && e.status === 404) return <NotFound />;
  if (e instanceof ApiError && e.status === 403) return <Forbidden detail={e.message} />;
  return (
    <section class="error-page" aria-labelledby="error-title">
      <h1 id="error-title">{e instanceof ApiError && e.status === 401 ? "Signed out" : "Something went wrong"}</h1>
      <p role="alert">{e.message}</p>
    </section>
  );
}
