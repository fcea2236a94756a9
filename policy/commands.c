/*
 * commands.c - the `commands` dimension (security.md 6.2). A command is
 * treated as shell source even when it arrives as an argv array, because the
 * upstream may join and run it through `sh -c`. So every byte must be in a
 * conservative safe set (letters, digits, space and -_./,:=+@%): that one rule
 * removes chaining, substitution, redirection, globbing, quoting, newline
 * injection and Unicode tricks (NBSP, U+2028). The command is then split at
 * spaces without any expansion and matched token-wise against patterns:
 *
 *   "git status"   exactly these two tokens
 *   "git log *"    '*' alone is one token that does not start with '-'
 *   "git log -*"   "-*" is one flag token, whatever follows its '-'
 *   "ls **"        a final "**" is any number of non-flag tokens
 *   "cat *.txt"    other tokens are path-mode globs ('*' stops at '/'), and a
 *                  token starting with '-' only matches a pattern token that
 *                  starts with '-' too
 *
 * The program token (the first) gets stricter rules: "VAR=value" is an
 * environment assignment and never a program; wrappers that run another
 * command (env, sudo, sh, xargs, ...) match only a pattern that names them
 * literally; a path-qualified program matches only a pattern whose program
 * is the same canonical absolute path, and a relative one ("./git") never.
 */
#include "policy/commands.h"

#include <stdlib.h>
#include <string.h>

#include "policy/glob.h"

#define MAX_TOKEN_LEN 255

struct mcpd__policy_cmdpat {
    char *buf;                                    /* the tokens, NUL-separated */
    const char *tok[MCPD_POLICY_MAX_TOKENS];      /* into buf */
    struct mcpd__glob *g[MCPD_POLICY_MAX_TOKENS]; /* tok[i] compiled (path mode) */
    int n;
    bool rest; /* the last token is "**" */
};

/* ---- characters ----------------------------------------------------------------------------- */

static bool is_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-_./,:=+@%", c) != NULL);
}

/* Why printable ASCII c, which is not safe, is refused. */
static const char *meta_why(unsigned char c)
{
    static const struct {
        char c;
        const char *why;
    } metas[] = {
        { ';', "shell metacharacter ';'" }, { '&', "shell metacharacter '&'" },
        { '|', "shell metacharacter '|'" }, { '$', "shell metacharacter '$'" },
        { '`', "shell metacharacter '`'" }, { '(', "shell metacharacter '('" },
        { ')', "shell metacharacter ')'" }, { '{', "shell metacharacter '{'" },
        { '}', "shell metacharacter '}'" }, { '<', "shell metacharacter '<'" },
        { '>', "shell metacharacter '>'" }, { '!', "shell metacharacter '!'" },
        { '#', "shell metacharacter '#'" }, { '*', "shell metacharacter '*'" },
        { '?', "shell metacharacter '?'" }, { '[', "shell metacharacter '['" },
        { ']', "shell metacharacter ']'" }, { '~', "shell metacharacter '~'" },
        { '\'', "shell quote '''" },        { '"', "shell quote '\"'" },
        { '\\', "shell escape '\\'" },      { '^', "shell metacharacter '^'" },
    };
    for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++)
        if (metas[i].c == (char)c)
            return metas[i].why;
    return "shell metacharacter";
}

/* Why byte c (not safe, not a space) is refused. */
static const char *char_why(unsigned char c)
{
    if (c == '\0')
        return "NUL character";
    if (c == '\n')
        return "newline";
    if (c == '\r')
        return "carriage return";
    if (c == '\t')
        return "tab";
    if (c < 0x20 || c == 0x7F)
        return "control character";
    if (c >= 0x80)
        return "non-ASCII character";
    return meta_why(c);
}

/* Patterns may also hold glob syntax. */
static bool pattern_char_ok(unsigned char c)
{
    return is_safe(c) || (c != '\0' && strchr("*?[]!^\\", c) != NULL);
}

/*
 * Finds the next space-separated token at s[*pos]. Returns 1 with *tok set,
 * 0 at the end, -1 with *why on a refused byte or an overlong token.
 */
static int next_token(const char *s, size_t len, size_t *pos, bool pattern,
                      struct mcpd__policy_slice *tok, const char **why)
{
    size_t i = *pos, start;

    while (i < len && s[i] == ' ')
        i++;
    if (i == len) {
        *pos = i;
        return 0;
    }
    start = i;
    for (; i < len && s[i] != ' '; i++) {
        unsigned char c = (unsigned char)s[i];
        if (pattern ? !pattern_char_ok(c) : !is_safe(c)) {
            *why = char_why(c);
            return -1;
        }
    }
    if (i - start > MAX_TOKEN_LEN) {
        *why = "token longer than 255 bytes";
        return -1;
    }
    tok->p = s + start;
    tok->len = i - start;
    *pos = i;
    return 1;
}

/* ---- commands ------------------------------------------------------------------------------- */

int mcpd__policy_cmd_split(struct mcpd__policy_cmd *c, const char *s, size_t len, const char **why)
{
    struct mcpd__policy_slice tok;
    size_t pos = 0;
    int r;

    c->n = 0;
    while ((r = next_token(s, len, &pos, false, &tok, why)) == 1) {
        if (c->n == MCPD_POLICY_MAX_TOKENS) {
            *why = "more than 64 tokens";
            return -1;
        }
        c->tok[c->n++] = tok;
    }
    if (r < 0)
        return -1;
    if (c->n == 0) {
        *why = "empty command";
        return -1;
    }
    return 0;
}

int mcpd__policy_cmd_push(struct mcpd__policy_cmd *c, const char *s, size_t len, const char **why)
{
    if (c->n == MCPD_POLICY_MAX_TOKENS) {
        *why = "more than 64 tokens";
        return -1;
    }
    if (len == 0) {
        *why = "empty argument";
        return -1;
    }
    if (len > MAX_TOKEN_LEN) {
        *why = "token longer than 255 bytes";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_safe((unsigned char)s[i])) {
            *why = s[i] == ' ' ? "space inside an argument" : char_why((unsigned char)s[i]);
            return -1;
        }
    }
    c->tok[c->n].p = s;
    c->tok[c->n].len = len;
    c->n++;
    return 0;
}

bool mcpd__policy_cmd_is_wrapper(const char *p, size_t len)
{
    static const char *const wrappers[] = {
        "env",     "command",  "exec",    "nice",    "timeout", "xargs",       "sh",       "bash",
        "dash",    "zsh",      "ksh",     "mksh",    "ash",     "csh",         "tcsh",     "fish",
        "eval",    "busybox",  "sudo",    "doas",    "su",      "nohup",       "stdbuf",   "setsid",
        "chroot",  "time",     "watch",   "ionice",  "taskset", "chrt",        "flock",    "script",
        "runuser", "pkexec",   "unshare", "nsenter", "strace",  "ltrace",      "firejail", "sg",
        "newgrp",  "parallel", "source",  ".",       "builtin", "systemd-run",
    };
    for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++)
        if (strlen(wrappers[i]) == len && memcmp(wrappers[i], p, len) == 0)
            return true;
    return false;
}

int mcpd__policy_cmd_program(const struct mcpd__policy_cmd *c, char *canon, size_t cap,
                             const char **why)
{
    const struct mcpd__policy_slice *p = &c->tok[0];

    if (memchr(p->p, '=', p->len)) {
        *why = "environment assignment";
        return -1;
    }
    if (memchr(p->p, '/', p->len) == NULL)
        return 0;
    if (p->p[0] != '/') {
        *why = "relative program path";
        return -1;
    }
    if (mcpd_policy_path_canon(canon, cap, p->p, p->len, why) != 0)
        return -1;
    return 1;
}

int mcpd_policy_command_tokens(char tokens[][256], int maxtokens, const char *cmd, size_t len,
                               const char **why)
{
    struct mcpd__policy_slice tok;
    const char *dummy;
    size_t pos = 0;
    int n = 0, r;

    if (why == NULL)
        why = &dummy;
    if (cmd == NULL && len > 0) {
        *why = "empty command";
        return -1;
    }
    while ((r = next_token(cmd, len, &pos, false, &tok, why)) == 1) {
        if (n >= maxtokens) {
            *why = "too many tokens";
            return -1;
        }
        memcpy(tokens[n], tok.p, tok.len);
        tokens[n++][tok.len] = '\0';
    }
    if (r < 0)
        return -1;
    if (n == 0) {
        *why = "empty command";
        return -1;
    }
    return n;
}

/* ---- patterns ------------------------------------------------------------------------------- */

/* Checks the program token of a pattern. */
static int check_program(const char *prog, const char **why)
{
    char canon[MCPD_POLICY_MAX_PATH + 1];

    if (strchr(prog, '=')) {
        *why = "the program cannot contain '=' (an environment assignment)";
        return -1;
    }
    if (prog[0] == '-' || strcmp(prog, "**") == 0) {
        *why = "the first token must name a program";
        return -1;
    }
    if (strchr(prog, '/') == NULL)
        return 0;
    if (!mcpd__policy_glob_is_literal(prog) ||
        mcpd_policy_path_canon(canon, sizeof(canon), prog, strlen(prog), why) != 0 ||
        strcmp(canon, prog) != 0) {
        *why = "a path-qualified program must be a canonical absolute path without wildcards";
        return -1;
    }
    return 0;
}

/* Validates the tokens of a split pattern. */
static int check_pattern(const struct mcpd__policy_cmdpat *p, const char **why)
{
    if (p->n == 0) {
        *why = "empty command pattern";
        return -1;
    }
    if (check_program(p->tok[0], why) != 0)
        return -1;
    for (int i = 0; i < p->n; i++) {
        if (mcpd_policy_glob_check(p->tok[i], why) != 0)
            return -1;
        if (strcmp(p->tok[i], "**") == 0 && i != p->n - 1) {
            *why = "'**' is only allowed as the last token";
            return -1;
        }
    }
    return 0;
}

/* Splits text into p->buf / p->tok. */
static int split_pattern(struct mcpd__policy_cmdpat *p, const char *text, const char **why)
{
    struct mcpd__policy_slice tok;
    size_t len = strlen(text), pos = 0;
    int r;

    if ((p->buf = malloc(len + 1)) == NULL) {
        *why = "out of memory";
        return -1;
    }
    while ((r = next_token(text, len, &pos, true, &tok, why)) == 1) {
        char *dst = p->buf + (tok.p - text);
        if (p->n == MCPD_POLICY_MAX_TOKENS) {
            *why = "more than 64 tokens";
            return -1;
        }
        memcpy(dst, tok.p, tok.len);
        dst[tok.len] = '\0';
        p->tok[p->n++] = dst;
    }
    return r < 0 ? -1 : 0;
}

int mcpd__policy_cmdpat_new(struct mcpd__policy_cmdpat **out, const char *text, const char **why)
{
    struct mcpd__policy_cmdpat *p;

    *out = NULL;
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        *why = "out of memory";
        return -1;
    }
    if (split_pattern(p, text, why) != 0 || check_pattern(p, why) != 0) {
        mcpd__policy_cmdpat_free(p);
        return -1;
    }
    for (int i = 0; i < p->n; i++) {
        if (mcpd__glob_new(&p->g[i], p->tok[i], MCPD__GLOB_PATH, why) != 0) {
            mcpd__policy_cmdpat_free(p);
            return -1;
        }
    }
    p->rest = p->n > 1 && strcmp(p->tok[p->n - 1], "**") == 0;
    *out = p;
    return 0;
}

void mcpd__policy_cmdpat_free(struct mcpd__policy_cmdpat *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->n; i++)
        mcpd__glob_free(p->g[i]);
    free(p->buf);
    free(p);
}

/* ---- matching ------------------------------------------------------------------------------- */

static bool slice_is(const struct mcpd__policy_slice *t, const char *s)
{
    return strlen(s) == t->len && memcmp(s, t->p, t->len) == 0;
}

/* One argument token against one pattern token (pt, compiled as g). */
static bool token_match(const char *pt, const struct mcpd__glob *g,
                        const struct mcpd__policy_slice *t)
{
    bool flag = t->len > 0 && t->p[0] == '-';
    bool pflag = pt[0] == '-' || (pt[0] == '\\' && pt[1] == '-');

    if (strcmp(pt, "*") == 0)
        return !flag;
    if (strcmp(pt, "-*") == 0)
        return flag;
    if (flag && !pflag)
        return false;
    return mcpd__glob_match(g, t->p, t->len);
}

static bool program_match(const char *pt, const struct mcpd__glob *g,
                          const struct mcpd__policy_slice *prog, const char *canon)
{
    if (canon != NULL)
        return strcmp(pt, canon) == 0;
    if (strchr(pt, '/') != NULL)
        return false;
    if (mcpd__policy_cmd_is_wrapper(prog->p, prog->len))
        return mcpd__policy_glob_is_literal(pt) && slice_is(prog, pt);
    return token_match(pt, g, prog);
}

bool mcpd__policy_cmdpat_match(const struct mcpd__policy_cmdpat *p,
                               const struct mcpd__policy_cmd *c, const char *canon)
{
    if (c->n == 0 || !program_match(p->tok[0], p->g[0], &c->tok[0], canon))
        return false;
    for (int i = 1; i < p->n; i++) {
        if (i == p->n - 1 && p->rest) {
            for (int j = i; j < c->n; j++)
                if (c->tok[j].p[0] == '-')
                    return false;
            return true;
        }
        if (i >= c->n || !token_match(p->tok[i], p->g[i], &c->tok[i]))
            return false;
    }
    return c->n == p->n;
}
