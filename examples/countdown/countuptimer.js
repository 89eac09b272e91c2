// Counts up once a second from 1 to COUNT_UP_TO (default 100000), then exits.
const to = Number(process.env.COUNT_UP_TO || 100000);
let i = 1;
const t = setInterval(() => {
  console.log(i);
  if (i++ >= to) clearInterval(t);
}, 1000);
