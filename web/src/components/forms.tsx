/**
 * @module web/components/forms
 * Form parts every page uses: a labelled field that shows the API's message for it, the
 * form-level error, a button that asks for confirmation in a dialog (and one that removes a
 * resource that way), and a copy button.
 */
import type { ComponentChildren } from "preact";
import { useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api.ts";

/** A labelled input; the API's message for `name` (from the last failed submit) beneath it. */
export function Field(props: {
  label: string;
  name: string;
  error?: ApiError | Error | undefined;
  hint?: string;
  type?: "text" | "password" | "number" | "url" | "search" | "datetime-local" | "email";
  value?: string | number;
  required?: boolean;
  autoComplete?: string;
  autoFocus?: boolean;
  min?: number;
  max?: number;
  placeholder?: string;
  pattern?: string;
  onInput?: (value: string) => void;
}) {
  const { label, name, error, hint, onInput, ...input } = props;
  const id = `f-${name}`;
  const message = error instanceof ApiError ? error.fieldMessage(name) : undefined;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        name={name}
        aria-invalid={message ? true : undefined}
        aria-describedby={message || hint ? `${id}-note` : undefined}
        // One of several `type`s, which Preact's input typing wants narrowed per type.
        {...(input as { type: "text" })}
        onInput={onInput && ((e) => onInput((e.target as HTMLInputElement).value))}
      />
      {(message || hint) && (
        <small id={`${id}-note`} class={message ? "field-error" : "hint"}>
          {message || hint}
        </small>
      )}
    </div>
  );
}

/** The error of the last submit, announced to screen readers. */
export function FormError(props: { error: Error | undefined }) {
  if (!props.error) return null;
  return (
    <p class="form-error" role="alert">
      {props.error.message}
    </p>
  );
}

/** Runs `action` with busy/error state; returns what the form needs. */
export function useAction<A extends unknown[]>(action: (...args: A) => Promise<unknown>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const run = async (...args: A) => {
    setBusy(true);
    setError(undefined);
    try {
      await action(...args);
      return true;
    } catch (e) {
      setError(e as Error);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(undefined) };
}

/** Form values as strings, by field name. */
export function formValues(ev: Event): Record<string, string> {
  ev.preventDefault();
  const out: Record<string, string> = {};
  for (const [k, v] of new FormData(ev.currentTarget as HTMLFormElement)) out[k] = String(v);
  return out;
}

/**
 * A button whose action runs only after the person confirms in a modal dialog. The dialog
 * names what will happen; "Cancel" is focused first so Enter does not destroy anything.
 */
export function ConfirmButton(props: {
  label: string;
  /** What the dialog asks, e.g. "Delete project web? Its builds and cache go with it." */
  question: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => Promise<unknown>;
  danger?: boolean;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const act = useAction(props.onConfirm);
  return (
    <>
      <button
        type="button"
        class={props.danger ? "danger" : undefined}
        onClick={() => {
          act.clear();
          dialog.current?.showModal();
          cancel.current?.focus();
        }}
      >
        {props.label}
      </button>
      <dialog ref={dialog} aria-label={props.confirmLabel}>
        <p>{props.question}</p>
        <FormError error={act.error} />
        <div class="actions">
          <button type="button" ref={cancel} onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button
            type="button"
            class={props.danger ? "danger" : "primary"}
            disabled={act.busy}
            onClick={async () => {
              if (await act.run()) dialog.current?.close();
            }}
          >
            {props.confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}

/**
 * A row's destructive action (revoke a token, remove a rule, a member…): asks in a dialog,
 * DELETEs `path`, then lets the page reload what changed. A refusal stays in the dialog.
 */
export function RemoveButton(props: {
  label: string;
  question: ComponentChildren;
  confirmLabel: string;
  /** The resource's API address. */
  path: string;
  onRemoved: () => Promise<unknown>;
}) {
  return (
    <ConfirmButton
      label={props.label}
      question={props.question}
      confirmLabel={props.confirmLabel}
      danger
      onConfirm={async () => {
        await api.delete(props.path);
        await props.onRemoved();
      }}
    />
  );
}

/** Copies `text` to the clipboard; says so for screen readers. */
export function CopyButton(props: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      onClick={async () => {
        await navigator.clipboard.writeText(props.text);
        setDone(true);
        setTimeout(() => setDone(false), 2000);
      }}
    >
      {done ? "Copied" : (props.label ?? "Copy")}
    </button>
  );
}

/** A secret shown once (a new token): a read-only box labelled `label`, a copy button, the warning. */
export function ShownOnce(props: { label: string; value: string }) {
  const id = `once-${props.label.replace(/\W+/g, "-").toLowerCase()}`;
  return (
    <div class="shown-once" role="status">
      <label for={id}>{props.label}</label> — shown once; copy it now.
      <div class="actions">
        <input id={id} class="secret" readOnly value={props.value} size={Math.min(props.value.length, 60)} />
        <CopyButton text={props.value} label={`Copy ${props.label.toLowerCase()}`} />
      </div>
    </div>
  );
}
