// Counts down once a second from 10 to COUNT_DOWN_TO (default 1), then exits.
const to = Number(process.env.COUNT_DOWN_TO || 1);
let i = Number(process.env.COUNT_FROM || 10);
const t = setInterval(() => {
  console.log(i);
  if (i-- <= to) clearInterval(t);
}, 1000);
