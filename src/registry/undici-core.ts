/**
 * undici's dispatchers without the package's index, which also loads fetch, cookies, WebSocket
 * and a DNS cache that ociboot never uses: ~40 ms at every start on Node 20, a quarter of a
 * small fetch.
 */
import api from "undici/lib/api/index.js";
import Agent from "undici/lib/dispatcher/agent.js";
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";
import EnvHttpProxyAgent from "undici/lib/dispatcher/env-http-proxy-agent.js";

// What the index does when it loads: every dispatcher gets request(), connect() and the rest.
// The transport calls request(); the proxy agent opens its CONNECT tunnels with connect().
Object.assign(Dispatcher.prototype, api);

export { Agent, EnvHttpProxyAgent };
