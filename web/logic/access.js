// Access (README "Access control"): `?token=` in the page URL is a client token, `#admin=` the
// admin token (a fragment never leaves the browser, so no server or proxy log sees it). Pure: the
// caller reads the URL and the storage.

const HTTP_TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/; // RFC 9110 tchar: a valid subprotocol

/**
 * How to hand a client token to `/ws`: as the subprotocol `bearer.<token>` offered together with
 * `ticker.v1` (kept out of URLs and access logs), or, when the token has characters a
 * subprotocol cannot carry, as `?token=`. No token: neither.
 */
export function wsAuth(token) {
  if (!token) return { protocols: undefined, query: "" };
  if (HTTP_TOKEN.test(token)) return { protocols: ["ticker.v1", `bearer.${token}`], query: "" };
  return { protocols: undefined, query: `?token=${encodeURIComponent(token)}` };
}

/** `#admin=<token>` out of a location hash: `{admin, hash}` with the rest of the hash kept. */
export function adminFromHash(hash) {
  const h = (hash || "").replace(/^#/, "");
  if (!h) return { admin: null, hash: "" };
  let admin = null;
  const rest = [];
  for (const part of h.split("&")) {
    if (part.startsWith("admin=")) {
      try {
        admin = decodeURIComponent(part.slice(6)) || null;
      } catch {
        admin = part.slice(6) || null;
      }
    } else if (part) rest.push(part);
  }
  return { admin, hash: rest.length ? `#${rest.join("&")}` : "" };
}
