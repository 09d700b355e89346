/**
 * @module web/pages/projects/errors
 * Where a failed submit's message goes: at its field when the API named one the form shows,
 * otherwise above the buttons (a name taken, a quota reached, a refusal).
 */
import { ApiError } from "../../api.ts";

/** The error to show for the whole form: none when every message the API gave sits at a field. */
export function fieldOrForm(error: Error | undefined, fields: readonly string[]): Error | undefined {
  if (!(error instanceof ApiError)) return error;
  return fields.some((f) => error.fieldMessage(f)) ? undefined : error;
}
