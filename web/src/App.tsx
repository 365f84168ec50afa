// The page: who is signed in, then my orders or one order.

import { useEffect, useMemo, useState } from "react";
import { OrderApi } from "./api";
import { loadWebConfig, type WebConfig } from "./config";
import { OrderPage } from "./OrderPage";
import { OrdersPage } from "./OrdersPage";
import { useRoute } from "./route";
import { restoreSession, type Session } from "./session";
import { SignIn } from "./SignIn";

type Loaded = { config: WebConfig; session: Session | null };

export function App() {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const route = useRoute();

  useEffect(() => {
    let current = true;
    (async () => {
      const config = await loadWebConfig();
      const session = await restoreSession(config).catch((error: Error) => {
        setProblem(error.message);
        return null;
      });
      if (current) {
        setLoaded({ config, session });
      }
    })().catch((error: Error) => setProblem(error.message));
    return () => {
      current = false;
    };
  }, []);

  const api = useMemo(
    () => (loaded?.session ? new OrderApi(loaded.config.pipeline, loaded.session) : null),
    [loaded],
  );

  return (
    <>
      <header className="top">
        <a className="brand" href="#/">
          orderpipe
        </a>
        {loaded?.session && (
          <div className="who">
            <span>
              Signed in as <strong data-testid="signed-in-as">{loaded.session.customer}</strong>
              {loaded.session.development && <span className="badge">development</span>}
            </span>
            <button
              type="button"
              className="link"
              onClick={async () => {
                await loaded.session?.signOut();
                setLoaded({ config: loaded.config, session: null });
              }}
            >
              Sign out
            </button>
          </div>
        )}
      </header>
      <main>
        {problem && (
          <p role="alert" className="problem">
            {problem}
          </p>
        )}
        {!loaded && !problem && <p aria-busy="true">Loading…</p>}
        {loaded && !loaded.session && (
          <SignIn config={loaded.config} onSignedIn={(session) => setLoaded({ config: loaded.config, session })} />
        )}
        {api && route.page === "orders" && <OrdersPage api={api} />}
        {api && route.page === "order" && <OrderPage key={route.id} api={api} orderId={route.id} />}
      </main>
    </>
  );
}
