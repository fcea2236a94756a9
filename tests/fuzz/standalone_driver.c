/*
 * standalone_driver.c - a main() for the fuzz targets without libFuzzer, so
 * any compiler can build them and CTest can replay their corpora (after
 * libgit2's fuzzers/standalone_driver.c idea; written for mcpd).
 *
 * Usage: replay_<target> PATH...   Each PATH is a file or a directory whose
 * regular files are replayed in name order. Exits 0 once every input ran
 * (a failed invariant aborts), 1 when a path cannot be read or no input was
 * found.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT (16u * 1024 * 1024)

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *data;
    struct stat st;
    size_t len;

    if (fp == NULL || fstat(fileno(fp), &st) != 0 || st.st_size < 0 ||
        (size_t)st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "%s: cannot read (or larger than %u bytes)\n", path, REPLAY_MAX_INPUT);
        if (fp)
            fclose(fp);
        return -1;
    }
    /* exactly the file's size, so ASan sees a read past the input */
    data = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (data == NULL) {
        fclose(fp);
        return -1;
    }
    len = fread(data, 1, (size_t)st.st_size, fp);
    fclose(fp);
    if (len != (size_t)st.st_size) {
        fprintf(stderr, "%s: short read\n", path);
        free(data);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

static int select_regular(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Runs every file of `dir`; returns the count, or -1. */
static long run_dir(const char *dir)
{
    struct dirent **names;
    long count = 0;
    int n = scandir(dir, &names, select_regular, alphasort);

    if (n < 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0) {
                count = -1;
                break;
            }
            count++;
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        long n;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : (run_file(argv[i]) == 0 ? 1 : -1);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("%s: replayed %ld input(s)\n", argv[0], total);
    return total > 0 ? 0 : 1;
}
