#!/usr/bin/env node
// An MCP server (official SDK, stdio) that dies in the middle of a call: `crash` exits the
// process with status 3 before answering; `ok` returns the text "fine". For the gateway's test of
// a server that goes away while a call is outstanding. Requests it had already read when `crash`
// arrived (even later ones in the same write) are still answered; `crash` itself never is.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";

const server = new McpServer({ name: "quint-crash-test-server", version: "1.0.0" });

server.registerTool("ok", { description: "Answers normally." }, async () => ({
    content: [{ type: "text", text: "fine" }],
}));

server.registerTool("crash", { description: "Exits the server (status 3) before answering." }, async () => {
    // Let the answers to requests already read (e.g. an `ok` sent in the same write) go out
    // first: they are only a few promise steps behind, and exiting at once would lose them.
    await new Promise((resolve) => setImmediate(resolve));
    process.stderr.write("crash-server: exiting with status 3 in the middle of a tools/call\n");
    process.exit(3);
});

await server.connect(new StdioServerTransport());
