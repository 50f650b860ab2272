// Unit tests for access tokens (web/logic/access.js): node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";

import { adminFromHash, wsAuth } from "../../web/logic/access.js";

test("wsAuth: a token goes in the subprotocol offer, beside ticker.v1", () => {
  assert.deepEqual(wsAuth(null), { protocols: undefined, query: "" });
  assert.deepEqual(wsAuth(""), { protocols: undefined, query: "" });
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln-_";
  assert.deepEqual(wsAuth(jwt), { protocols: ["ticker.v1", `bearer.${jwt}`], query: "" });
  // Characters a subprotocol cannot carry: the query string instead.
  assert.deepEqual(wsAuth("a b/c="), { protocols: undefined, query: "?token=a%20b%2Fc%3D" });
});

test("adminFromHash takes #admin= and keeps the rest of the hash", () => {
  assert.deepEqual(adminFromHash(""), { admin: null, hash: "" });
  assert.deepEqual(adminFromHash("#admin=s3cret"), { admin: "s3cret", hash: "" });
  assert.deepEqual(adminFromHash("#x=1&admin=a%20b&y"), { admin: "a b", hash: "#x=1&y" });
  assert.deepEqual(adminFromHash("#chart"), { admin: null, hash: "#chart" });
  assert.deepEqual(adminFromHash("#admin="), { admin: null, hash: "" });
  assert.deepEqual(adminFromHash("#admin=%E0%A4%A"), { admin: "%E0%A4%A", hash: "" });
});
