// What the host tells the page at /web-config.json: how people sign in here.

/** `jwt`: the issuer's login (OIDC code + PKCE); `none`: the development sign-in;
 * `unavailable`: the host accepts no people (API keys only). */
export type SignInMode = "jwt" | "none" | "unavailable";

export interface WebConfig {
  sign_in: SignInMode;
  /** The pipeline whose records the page shows (`/api/<pipeline>`). */
  pipeline: string;
  /** The OIDC issuer (jwt only). */
  issuer?: string;
  /** The public OIDC client the page signs in as (jwt only). */
  client_id?: string;
  /** The scopes the page asks for (jwt only). */
  scope?: string;
}

export async function loadWebConfig(): Promise<WebConfig> {
  const response = await fetch("/web-config.json", { cache: "no-store" });
  if (!response.ok) {
    throw new Error(`the host did not say how to sign in (HTTP ${response.status})`);
  }
  return (await response.json()) as WebConfig;
}
