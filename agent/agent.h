/*
 * agent.h - `mcpd agent -c agent.yaml`: the program that runs on a user's
 * machine, dials mcpd's /agent endpoint over WebSocket (wss when mcpd has
 * TLS) with its agent key, and serves its builtins and bridged local stdio
 * MCP servers to mcpd as one MCP server (see README "Agents" and
 * prompts/agent-protocol.md for the wire protocol).
 */
#ifndef MCPD_AGENT_AGENT_H
#define MCPD_AGENT_AGENT_H

/*
 * Runs the agent until SIGINT/SIGTERM. argv[0] is "agent"; options:
 * -c FILE (required), --log-level LEVEL. Returns the process exit code
 * (0 after a clean stop, 1 for a bad configuration, 2 for bad usage).
 */
int mcpd_agent_main(int argc, char **argv);

#endif
