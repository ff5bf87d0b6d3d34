// Node-Media-Server on loopback, RTMP only, until killed: `node serve.js <port> <data dir>`.
// It behaves unlike nginx-rtmp where a reader can notice: it sends a new player the last GOP
// at once, and tells a player nothing when the publisher leaves (it waits for another).
const NodeMediaServer = require("node-media-server");

const [port, dir] = process.argv.slice(2);
new NodeMediaServer({ bind: "127.0.0.1", rtmp: { port: Number(port) }, store: { path: dir } }).run();
