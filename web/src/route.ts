// The page's two places, kept in the URL's hash so a reload stays where it was:
// `#/` (my orders and a new order) and `#/orders/<id>` (one order, live).

import { useEffect, useState } from "react";

export type Route = { page: "orders" } | { page: "order"; id: string };

function parse(hash: string): Route {
  const match = /^#\/orders\/([0-9a-fA-F-]{36})$/.exec(hash);
  return match ? { page: "order", id: match[1] } : { page: "orders" };
}

export function orderHref(id: string): string {
  return `#/orders/${id}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.hash));
  useEffect(() => {
    const changed = () => setRoute(parse(window.location.hash));
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}
