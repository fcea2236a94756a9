/*
 * limits.h - every cap and timeout default of mcpd in one place.
 *
 * Every buffer fed by a peer is bounded by one of these numbers; no module
 * hard-codes its own. The values follow the robustness contract in
 * shared/research/security.md section 5. Values marked "config" can be
 * overridden under `limits:` in the configuration file.
 */
#ifndef MCPD_LIMITS_H
#define MCPD_LIMITS_H

/* JSON-RPC messages (any transport, any direction). */
#define MCPD_MAX_MESSAGE      (4u * 1024 * 1024)  /* one client message (config) */
#define MCPD_MAX_UPSTREAM_MSG (16u * 1024 * 1024) /* one upstream message (config) */
#define MCPD_MAX_JSON_DEPTH   64                  /* nesting of arrays/objects */
#define MCPD_MAX_BATCH        64                  /* elements of a 2025-03-26 batch */

/* HTTP listener. */
#define MCPD_MAX_REQUEST_LINE  (8u * 1024)        /* 414 past this */
#define MCPD_MAX_HEADER_BYTES  (32u * 1024)       /* 431 past this */
#define MCPD_MAX_HEADERS       100                /* 431 past this */
#define MCPD_HEADER_TIMEOUT_MS 10000              /* slowloris: headers complete within (config) */
#define MCPD_BODY_TIMEOUT_MS   30000              /* body complete within (config) */
#define MCPD_IDLE_TIMEOUT_MS   60000              /* keep-alive idle (config) */
#define MCPD_MAX_CONNECTIONS   1024               /* excess closed at accept (config) */
#define MCPD_WRITE_HIGH_WATER  (1u * 1024 * 1024) /* slow reader: close the stream past it */
#define MCPD_SSE_KEEPALIVE_MS  15000              /* ":" comment on idle SSE streams */

/* Sessions. */
#define MCPD_MAX_SESSIONS    1000               /* initialize answered 503 past it (config) */
#define MCPD_SESSION_IDLE_MS (30u * 60 * 1000)  /* idle sessions reaped (config) */
#define MCPD_MAX_INFLIGHT    32                 /* in-flight requests per session (config) */
#define MCPD_MAX_GET_STREAMS 4                  /* concurrent GET streams per session */
#define MCPD_REPLAY_EVENTS   64                 /* SSE events kept per stream for Last-Event-ID */
#define MCPD_REPLAY_BYTES    (1u * 1024 * 1024) /* bytes kept per stream for Last-Event-ID */
#define MCPD_MAX_REPLAYS     8                  /* resumable streams kept per session */
#define MCPD_RESUME_GRACE_MS 30000              /* a dropped SSE stream may be resumed within */

/* Upstreams. */
#define MCPD_CALL_TIMEOUT_MS       30000  /* default per-call deadline (config, per server) */
#define MCPD_MAX_CALL_TIMEOUT_MS   600000 /* hard cap whatever the config says */
#define MCPD_INIT_TIMEOUT_MS       30000  /* upstream initialize + first tools/list */
#define MCPD_MRTR_PARK_MS          120000 /* limits.input_wait: a call waits for a modern retry */
#define MCPD_MAX_UPSTREAM_INFLIGHT 256    /* pending requests per upstream */
#define MCPD_MAX_UPSTREAM_TOOLS    10000  /* tools one upstream may register */
#define MCPD_MAX_UPSTREAM_NOTIFY   2000   /* notifications per second per upstream; more dropped */
#define MCPD_MAX_LIST_PAGES        100    /* tools/list pages followed per upstream */
#define MCPD_RESTART_MIN_MS        1000   /* child restart backoff start */
#define MCPD_RESTART_MAX_MS        60000  /* child restart backoff cap */
#define MCPD_STOP_GRACE_MS         2000   /* stdin closed -> SIGTERM */
#define MCPD_KILL_GRACE_MS         3000   /* SIGTERM -> SIGKILL */
#define MCPD_MAX_STDERR_LINE       4096   /* child stderr relayed per line, truncated past */

/* Upstreams that speak 2026-07-28. */
#define MCPD_MAX_MRTR_ROUNDS    16      /* input_required rounds of one call */
#define MCPD_MAX_REQUEST_STATE  65536   /* bytes of a requestState mcpd passes on */
#define MCPD_UPSTREAM_LISTEN_MS 3600000 /* its subscriptions/listen, reopened after */

/* Connected agents (GET /agent). */
#define MCPD_AGENT_PING_MS             30000               /* WebSocket ping period (config) */
#define MCPD_AGENT_PONG_TIMEOUT_MS     40000               /* no pong within: dropped (config) */
#define MCPD_MAX_AGENT_MESSAGE_DEFAULT (4u * 1024 * 1024)  /* one WebSocket message (config) */
#define MCPD_MAX_AGENT_MESSAGE         (64u * 1024 * 1024) /* hard cap of agents.max_message */
#define MCPD_MAX_AGENT_GROUPS          64                  /* resources (groups) per agent */
#define MCPD_MAX_AGENTS                4096                /* agents the daemon tracks */

/* Catalog. */
#define MCPD_MAX_NAME       64  /* exposed tool names, [A-Za-z0-9_-] */
#define MCPD_LIST_PAGE_SIZE 500 /* tools per tools/list page (config) */

/* Shutdown. */
#define MCPD_DRAIN_MS 10000 /* in-flight calls may finish within this */

/* Config. */
#define MCPD_MAX_CONFIG_FILE (1u * 1024 * 1024)
#define MCPD_MAX_SERVERS     256

/* TLS and WebSocket (mcpd/net/tls.c, mcpd/net/ws.c). */
#define MCPD_TLS_MAX_PENDING       (1u * 1024 * 1024) /* plaintext written before the handshake ends */
#define MCPD_TLS_MAX_OUTPUT        (64u * 1024 * 1024) /* ciphertext of one write (our own output) */
#define MCPD_WS_MAX_MESSAGE        (4u * 1024 * 1024) /* default message cap; 1009 past it (config) */
#define MCPD_WS_MAX_SEND_QUEUE     (8u * 1024 * 1024) /* bytes queued to a slow peer: MCPD_ETOOBIG */
#define MCPD_WS_MAX_HANDSHAKE      (16u * 1024)       /* the client's upgrade response head */
#define MCPD_WS_MAX_INPUT          (256u * 1024)      /* plaintext read, not yet framed */
#define MCPD_WS_CLOSE_TIMEOUT_MS   3000               /* the peer's close frame within */
#define MCPD_WS_CONNECT_TIMEOUT_MS 15000              /* client dial + upgrade, when none given */

/* The agent program (`mcpd agent`, agent/). */
#define MCPD_AGENT_MAX_MESSAGE     (4u * 1024 * 1024) /* one WebSocket message from mcpd */
#define MCPD_AGENT_CONNECT_MS      15000              /* connect + TLS + upgrade */
#define MCPD_AGENT_RECONNECT_MIN   1000               /* backoff start (config) */
#define MCPD_AGENT_RECONNECT_MAX   60000              /* backoff cap (config) */
#define MCPD_AGENT_MAX_FILE_BYTES  (1u * 1024 * 1024) /* file_ops read/write size (config) */
#define MCPD_AGENT_MAX_DIR_ENTRIES 10000              /* list_directory entries returned */
#define MCPD_AGENT_SHELL_TIMEOUT   10000              /* shell_exec deadline (config) */
#define MCPD_AGENT_MAX_SHELL_OUT   (64u * 1024)       /* shell_exec output kept (config) */
#define MCPD_AGENT_MAX_SHELL_CALLS 16                 /* shell_exec commands running at once */
#define MCPD_AGENT_MAX_PENDING     1024               /* bridged calls in flight per child */
/* Plugins (manifests, .mst archives, declarative HTTP operations). */
#define MCPD_MAX_MANIFEST_FILE    (256u * 1024)       /* manifest.yaml */
#define MCPD_MAX_PLUGIN_OPS       256                 /* operations of one manifest */
#define MCPD_MAX_MST_ENTRIES      1024                /* entries of one .mst archive */
#define MCPD_MAX_MST_ENTRY        (16u * 1024 * 1024) /* one extracted file */
#define MCPD_MAX_MST_TOTAL        (64u * 1024 * 1024) /* all extracted files together */
#define MCPD_MAX_PLUGIN_URL       8192                /* an expanded URL template */
#define MCPD_MAX_PLUGIN_RESPONSE  (4u * 1024 * 1024)  /* an operation's response body */
#define MCPD_MAX_PLUGIN_ERRBODY   512                 /* body excerpt in an API error result */
#define MCPD_MAX_PLUGIN_REDIRECTS 5                   /* redirects followed, re-checked each hop */
#define MCPD_MAX_EGRESS_HOSTS     256                 /* egress.allowedHosts entries */
#define MCPD_PLUGIN_KEEP_CONNS    64                  /* idle connections a plugin keeps */

/* Credentials and OAuth (credentials.c, oauth.c, admin_credentials.c). */
#define MCPD_MAX_SECRET         (16u * 1024)  /* one secret read by `credentials add` */
#define MCPD_MAX_TOKEN_RESPONSE (64u * 1024)  /* a token or device endpoint's response body */
#define MCPD_OAUTH_TIMEOUT_MS   30000         /* one token endpoint exchange */
#define MCPD_REFRESH_MARGIN_MS  60000         /* refresh at most this long before expiry ... */
#define MCPD_REFRESH_FRACTION   80            /* ... or when this % of the lifetime passed */
#define MCPD_CRED_POLL_MS       1000          /* the registry re-reads the store when it changed */
#define MCPD_DEVICE_MAX_WAIT_MS (15u * 60000) /* device flow: polling stops after this */

#endif
