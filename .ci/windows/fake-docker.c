/* A recording stand-in for docker and docker-compose, for comparing the
 * plans of the Linux and Windows binaries of xtask. Every invocation is
 * appended to the file named by PGREPL_FAKE_LOG as one line: the program's
 * base name, then each argument, separated by " | ". It answers the
 * read-only questions xtask asks before a dry run (engine version, Compose
 * version, image present, no containers yet) and succeeds at everything
 * else without doing anything. Built for Linux with gcc and for Windows
 * with mingw from this one file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base(const char *p) {
    const char *b = p;
    for (const char *s = p; *s; s++)
        if (*s == '/' || *s == '\\') b = s + 1;
    return b;
}

static int has(int argc, char **argv, const char *word) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], word) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    char name[256];
    snprintf(name, sizeof name, "%s", base(argv[0]));
    size_t n = strlen(name);
    if (n > 4 && (strcmp(name + n - 4, ".exe") == 0 || strcmp(name + n - 4, ".EXE") == 0))
        name[n - 4] = 0;
    const char *log = getenv("PGREPL_FAKE_LOG");
    if (log) {
        /* One line, one write: nodes are probed in parallel, and lines
           written piece by piece could interleave. */
        static char line[16384];
        size_t len = (size_t)snprintf(line, sizeof line, "%s", name);
        for (int i = 1; i < argc && len < sizeof line; i++)
            len += (size_t)snprintf(line + len, sizeof line - len, " | %s", argv[i]);
        if (len >= sizeof line - 1) len = sizeof line - 2;
        line[len++] = '\n';
        FILE *f = fopen(log, "ab");
        if (f) {
            setvbuf(f, NULL, _IOFBF, sizeof line);
            fwrite(line, 1, len, f);
            fclose(f);
        }
    }
    int compose = strcmp(name, "docker-compose") == 0;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (compose) {
        if (strcmp(cmd, "version") == 0) { puts("1.29.2"); return 0; }
        return 0;
    }
    if (strcmp(cmd, "version") == 0) { puts("20.10.24"); return 0; }
    if (strcmp(cmd, "compose") == 0) return 1;           /* no Compose plugin */
    if (strcmp(cmd, "image") == 0 && has(argc, argv, "inspect")) { puts("sha256:0"); return 0; }
    /* The image's own major, read from it (postgres --version). */
    if (strcmp(cmd, "run") == 0 && has(argc, argv, "--version")) {
        puts("postgres (PostgreSQL) 17.12 (Debian 17.12-1.pgdg13+1)");
        return 0;
    }
    if (strcmp(cmd, "network") == 0 && has(argc, argv, "inspect")) return 1;
    if (strcmp(cmd, "volume") == 0 && has(argc, argv, "inspect")) return 1;
    return 0;                                            /* ps, ls: nothing */
}
