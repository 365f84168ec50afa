// Who is signed in, and the credential every API call carries.
//
// With `jwt`, oidc-client-ts runs the authorization code flow with PKCE against the issuer;
// the tokens live in sessionStorage (this tab only) and are renewed with the refresh token.
// With `none`, the development sign-in only remembers a customer name: the host is open
// and trusts the name it is given.

import { UserManager, WebStorageStateStore } from "oidc-client-ts";
import type { WebConfig } from "./config";

export interface Session {
  /** Whose orders the page shows (the token's user name, or the picked name). */
  customer: string;
  /** Whether this is the development sign-in (mode `none`). */
  development: boolean;
  /** The headers that say who calls: `Authorization: Bearer …`, or none. */
  authHeaders(): Promise<Record<string, string>>;
  /** The query naming the customer where the host cannot tell (mode `none`), else `{}`. */
  customerQuery(): Record<string, string>;
  signOut(): Promise<void>;
}

const DEVELOPMENT_CUSTOMER_KEY = "orderpipe.development-customer";

function userManager(config: WebConfig): UserManager {
  const home = `${window.location.origin}/`;
  return new UserManager({
    authority: config.issuer ?? "",
    client_id: config.client_id ?? "",
    redirect_uri: home,
    post_logout_redirect_uri: home,
    response_type: "code",
    scope: config.scope ?? "openid",
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: true,
  });
}

/** The session this tab already has: finishing a sign-in the issuer redirected back
 * from, or one stored earlier; `null` when nobody is signed in. */
export async function restoreSession(config: WebConfig): Promise<Session | null> {
  if (config.sign_in === "none") {
    const name = window.sessionStorage.getItem(DEVELOPMENT_CUSTOMER_KEY);
    return name ? developmentSession(name) : null;
  }
  if (config.sign_in !== "jwt") {
    return null;
  }
  const manager = userManager(config);
  const query = new URLSearchParams(window.location.search);
  if (query.has("code") && query.has("state")) {
    await manager.signinRedirectCallback();
    // The code is spent: keep it out of the address bar and the history.
    window.history.replaceState(null, "", window.location.pathname + window.location.hash);
  } else if (query.has("error") && query.has("state")) {
    window.history.replaceState(null, "", window.location.pathname);
    throw new Error(`the issuer refused the sign-in: ${query.get("error_description") ?? query.get("error")}`);
  } else if (query.has("state")) {
    // Back from the issuer's sign-out.
    await manager.signoutRedirectCallback().catch(() => undefined);
    window.history.replaceState(null, "", window.location.pathname);
  }
  const user = await manager.getUser();
  if (!user) {
    return null;
  }
  const customer = String(user.profile.preferred_username ?? user.profile.sub);
  return {
    customer,
    development: false,
    async authHeaders(): Promise<Record<string, string>> {
      let current = await manager.getUser();
      if (!current || current.expired) {
        current = await manager.signinSilent();
      }
      return current ? { Authorization: `Bearer ${current.access_token}` } : {};
    },
    customerQuery: () => ({}),
    async signOut() {
      // Ends the issuer's session too (with the id token as the hint); forgets the tokens first.
      await manager.signoutRedirect();
    },
  };
}

/** Sends the browser to the issuer's login page; it comes back to `/` with a code. */
export async function signInWithIssuer(config: WebConfig): Promise<void> {
  await userManager(config).signinRedirect();
}

export function developmentSignIn(name: string): Session {
  window.sessionStorage.setItem(DEVELOPMENT_CUSTOMER_KEY, name);
  return developmentSession(name);
}

function developmentSession(name: string): Session {
  return {
    customer: name,
    development: true,
    authHeaders: async () => ({}),
    customerQuery: () => ({ customer: name }),
    async signOut() {
      window.sessionStorage.removeItem(DEVELOPMENT_CUSTOMER_KEY);
    },
  };
}
