// A page on port 80 greeting WHO (default: World); no dependencies beyond Node itself.
const http = require("http");
const who = process.env.WHO || "World";
const port = Number(process.env.PORT || 80);
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
    res.end(`Hello ${who}. Wish you were here.\n`);
  })
  .listen(port, () => console.log(`listening on ${port}`));
