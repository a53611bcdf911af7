/* sluice — command dispatch. Argument parsing for each command lives in its cmd_*.c.
 * `sluice -m model.safetensors -p "..."` (no command, like sd.cpp's sd-cli) means generate. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

/* Weak so that the binary links while a command's file is not there yet; a missing command says so. */
#pragma weak sl_cmd_generate
#pragma weak sl_cmd_info
#pragma weak sl_cmd_synth
#pragma weak sl_cmd_bench

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static void usage(const command *cmds, int n) {
    printf("usage: sluice <command> [options]   (sluice <command> --help for details)\n\n");
    for (int i = 0; i < n; i++) printf("  %-10s %s%s\n", cmds[i].name, cmds[i].help, cmds[i].fn ? "" : " (not built)");
    printf("\nWith no command and sd.cpp-style flags (sluice -m model -p \"a cat\"), runs generate.\n");
}

int main(int argc, char **argv) {
    const command cmds[] = {
        {"generate", sl_cmd_generate, "generate images from a prompt (txt2img)"},
        {"info", sl_cmd_info, "describe model files: format, tensors, dtypes, bytes"},
        {"synth", sl_cmd_synth, "write a random-weight model (tests, benchmarks, demos)"},
        {"bench", sl_cmd_bench, "benchmark the diffusion model and whole generations"},
    };
    int n = (int)(sizeof cmds / sizeof cmds[0]);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(cmds, n);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("sluice 0.1.0\n");
        return 0;
    }
    const command *c = NULL;
    int shift = 1;
    for (int i = 0; i < n; i++)
        if (!strcmp(argv[1], cmds[i].name)) c = &cmds[i];
    if (!c && argv[1][0] == '-') {
        c = &cmds[0];
        shift = 0;
    }
    if (!c) {
        fprintf(stderr, "sluice: unknown command '%s'\n\n", argv[1]);
        usage(cmds, n);
        return 2;
    }
    if (!c->fn) {
        fprintf(stderr, "sluice: command '%s' is not part of this build\n", c->name);
        return 2;
    }
    return c->fn(argc - shift, argv + shift);
}
