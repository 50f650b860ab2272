// Two helpers every I/O module uses: an element by id, and the wall clock (ms since the epoch,
// monotonic within the page, comparable with the quotes' `ts`).

export const $ = (id) => document.getElementById(id);

export const now = () => performance.timeOrigin + performance.now();
