// Preferences in localStorage (`ticker.v1.*`). They are a nicety: private mode or a full quota
// only means they are not remembered.

const STORE = "ticker.v1.";

export function load(key, dflt) {
  try {
    const v = localStorage.getItem(STORE + key);
    return v === null ? dflt : v;
  } catch {
    return dflt;
  }
}

export function save(key, value) {
  try {
    localStorage.setItem(STORE + key, value);
  } catch {
    /* private mode or quota: preferences are a nicety */
  }
}
