// Signing in: the issuer's login page (jwt), or the clearly marked development sign-in
// that only picks a customer name (mode `none`, an open host meant for local use).

import { useState, type FormEvent } from "react";
import type { WebConfig } from "./config";
import { developmentSignIn, signInWithIssuer, type Session } from "./session";

export function SignIn({ config, onSignedIn }: { config: WebConfig; onSignedIn: (session: Session) => void }) {
  const [name, setName] = useState("");
  const [problem, setProblem] = useState<string | null>(null);

  if (config.sign_in === "jwt") {
    const issuerHost = config.issuer ? new URL(config.issuer).host : "the issuer";
    return (
      <section aria-labelledby="sign-in-title" className="card">
        <h1 id="sign-in-title">Sign in</h1>
        <p>Sign in to see your orders and follow them live.</p>
        <button
          type="button"
          onClick={() => signInWithIssuer(config).catch((error: Error) => setProblem(error.message))}
        >
          Sign in with {issuerHost}
        </button>
        {problem && <p role="alert" className="problem">{problem}</p>}
      </section>
    );
  }

  if (config.sign_in === "none") {
    const submit = (event: FormEvent) => {
      event.preventDefault();
      const customer = name.trim();
      if (customer) {
        onSignedIn(developmentSignIn(customer));
      }
    };
    return (
      <section aria-labelledby="sign-in-title" className="card">
        <h1 id="sign-in-title">Development sign-in</h1>
        <p className="warning" role="note">
          This host runs with <code>[auth] mode = "none"</code>: nobody is checked, and anyone may
          pick any customer name. For local use only.
        </p>
        <form onSubmit={submit}>
          <label htmlFor="development-customer">Customer name</label>
          <input
            id="development-customer"
            name="customer"
            autoComplete="username"
            required
            maxLength={256}
            value={name}
            onChange={(event) => setName(event.target.value)}
          />
          <button type="submit">Continue as this customer</button>
        </form>
      </section>
    );
  }

  return (
    <section className="card">
      <h1>Sign-in unavailable</h1>
      <p>This host accepts services only (API keys); people cannot sign in here.</p>
    </section>
  );
}
